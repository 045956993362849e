//! The gRPC edge: wire requests in, domain calls, wire responses out.

use std::{collections::HashMap, time::Duration};

use sqlx::PgPool;
use ticketing_proto::reservation::v1::{
    self as pb, reservation_service_server::ReservationService,
};
use tonic::{Request, Response, Status};

use crate::{
    concert_options::ConcertOptions,
    domain::{
        Charge, HoldSeat, Outlook, OutlookQuery, Pay, PayMode, Reservation, SeatCounts, positive_id,
    },
    error::ReservationError,
    hold_load::HoldLoad,
    seat_prices::SeatPrices,
    store::{holds, idempotency, payments, wallets},
};

/// Most options one CountTaken may ask about.
const MAX_OPTIONS_PER_COUNT: usize = 1_000;

pub struct ReservationGrpc {
    pub pool: PgPool,
    pub seat_prices: SeatPrices,
    /// Each concert's options and seat counts, for GetOutlook.
    pub concert_options: ConcertOptions,
    /// HoldSeat calls in flight and their recent latency, fed by HoldSeat, read by GetOutlook.
    pub hold_load: HoldLoad,
    pub hold: Duration,
    /// Most seats one user may hold or have bought per concert; 0 = no limit.
    pub max_seats_per_user: u32,
    pub max_charge_minor: i64,
    /// Each store call is timed where this edge makes it.
    pub latency: kit::metrics::StoreLatency,
}

#[tonic::async_trait]
impl ReservationService for ReservationGrpc {
    async fn hold_seat(
        &self,
        request: Request<pb::HoldSeatRequest>,
    ) -> Result<Response<pb::Reservation>, Status> {
        let hold = request.into_inner().try_into()?;
        // Timed from a well-formed request to its answer, whatever it is: a refusal such as
        // SEAT_TAKEN is a hold decided too. (Malformed requests, answered at once, would only
        // dilute the mean.)
        let _in_flight = self.hold_load.start();
        let reservation = self.decide_hold(hold).await?;
        Ok(Response::new(reservation.into()))
    }

    async fn get_reservation(
        &self,
        request: Request<pb::GetReservationRequest>,
    ) -> Result<Response<pb::Reservation>, Status> {
        let id = positive_id(
            request.into_inner().reservation_id,
            "INVALID_RESERVATION_ID",
            "reservationId",
        )?;
        let reservation = self.store("get", || holds::get(&self.pool, id)).await?;
        Ok(Response::new(reservation.into()))
    }

    async fn get_occupancy(
        &self,
        request: Request<pb::GetOccupancyRequest>,
    ) -> Result<Response<pb::Occupancy>, Status> {
        let option_id = positive_id(
            request.into_inner().concert_option_id,
            "INVALID_CONCERT_OPTION_ID",
            "concertOptionId",
        )?;
        let taken = self.store("occupancy", || holds::occupancy(&self.pool, option_id));
        Ok(Response::new(pb::Occupancy {
            concert_option_id: option_id,
            taken_seat_nos: taken.await?,
        }))
    }

    async fn count_taken(
        &self,
        request: Request<pb::CountTakenRequest>,
    ) -> Result<Response<pb::CountTakenResponse>, Status> {
        let option_ids = counted_options(request.into_inner())?;
        let counts = self
            .store("count_taken", || {
                holds::count_taken(&self.pool, &option_ids)
            })
            .await?;
        let mut taken: HashMap<i64, u32> = option_ids.iter().map(|id| (*id, 0)).collect();
        for (option_id, count) in counts {
            taken.insert(option_id, u32::try_from(count).unwrap_or(u32::MAX));
        }
        Ok(Response::new(pb::CountTakenResponse { taken }))
    }

    async fn count_held_and_sold(
        &self,
        request: Request<pb::CountTakenRequest>,
    ) -> Result<Response<pb::CountHeldAndSoldResponse>, Status> {
        let option_ids = counted_options(request.into_inner())?;
        let counts = self
            .store("count_held_and_sold", || {
                holds::count_held_and_sold(&self.pool, &option_ids)
            })
            .await?;
        let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
        let options = counts
            .into_iter()
            .map(|(option_id, held, sold)| {
                let counts = pb::HeldAndSold {
                    held: count(held),
                    sold: count(sold),
                };
                (option_id, counts)
            })
            .collect();
        Ok(Response::new(pb::CountHeldAndSoldResponse { options }))
    }

    async fn pay(&self, request: Request<pb::PayRequest>) -> Result<Response<pb::Payment>, Status> {
        let Pay {
            reservation_id,
            user_id,
            idempotency_key,
            mode,
        } = request.into_inner().try_into()?;
        let payment = match (mode, idempotency_key) {
            (PayMode::ReplayOnly, None) => return Err(ReservationError::NothingToReplay.into()),
            (PayMode::ReplayOnly, Some(key)) => {
                let parameters = reservation_id.to_string();
                let scope = || idempotency::Scope::new(user_id, &key, parameters.clone());
                self.store("replay", || idempotency::replay(&self.pool, scope()))
                    .await?
            }
            (PayMode::Admitted(room), None) => {
                let pay = async {
                    let mut tx = self.pool.begin().await.map_err(ReservationError::from)?;
                    let payment = payments::pay(&mut tx, reservation_id, user_id, room).await?;
                    tx.commit().await.map_err(ReservationError::from)?;
                    Ok::<_, ReservationError>(payment)
                };
                self.latency.time("pay", pay).await?
            }
            (PayMode::Admitted(room), Some(key)) => {
                let parameters = reservation_id.to_string();
                self.store("pay", || {
                    let scope = idempotency::Scope::new(user_id, &key, parameters.clone());
                    idempotency::once(&self.pool, scope, |tx| {
                        Box::pin(payments::pay(tx, reservation_id, user_id, room))
                    })
                })
                .await?
            }
        };
        Ok(Response::new(payment.into()))
    }

    async fn get_balance(
        &self,
        request: Request<pb::GetBalanceRequest>,
    ) -> Result<Response<pb::Wallet>, Status> {
        let user_id = positive_id(request.into_inner().user_id, "INVALID_USER_ID", "userId")?;
        let balance = self.store("balance", || wallets::balance(&self.pool, user_id));
        Ok(Response::new(balance.await?.into()))
    }

    async fn charge_wallet(
        &self,
        request: Request<pb::ChargeWalletRequest>,
    ) -> Result<Response<pb::Wallet>, Status> {
        let Charge {
            user_id,
            amount_minor,
            idempotency_key,
        } = Charge::parse(request.into_inner(), self.max_charge_minor)?;
        let wallet = match idempotency_key {
            None => {
                let charge = wallets::charge(&self.pool, user_id, amount_minor);
                self.latency.time("charge", charge).await?
            }
            Some(key) => {
                let parameters = amount_minor.to_string();
                self.store("charge", || {
                    let scope = idempotency::Scope::new(user_id, &key, parameters.clone());
                    idempotency::once(&self.pool, scope, |tx| {
                        Box::pin(wallets::charge(tx, user_id, amount_minor))
                    })
                })
                .await?
            }
        };
        Ok(Response::new(wallet.into()))
    }

    async fn get_outlook(
        &self,
        request: Request<pb::GetOutlookRequest>,
    ) -> Result<Response<pb::Outlook>, Status> {
        let OutlookQuery { concert_ids } = request.into_inner().try_into()?;
        // An empty list asks for the hold load only: no catalog, no SQL.
        let seats = if concert_ids.is_empty() {
            HashMap::new()
        } else {
            self.seats(&concert_ids).await?
        };
        // Read after the counts, so a slow count is in the load it answers with.
        let holds = self.hold_load.snapshot();
        Ok(Response::new(Outlook { seats, holds }.into()))
    }
}

impl ReservationGrpc {
    /// A store operation that is safe to run again (a read, a hold, a keyed write answered
    /// from its first result), timed, and run again when the server had ended its
    /// connection's session (a restart: `kit::postgres::again_if_session_ended`). Writes
    /// without a key are timed alone.
    async fn store<T, F, Fut>(
        &self,
        name: &'static str,
        operation: F,
    ) -> Result<T, ReservationError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ReservationError>>,
    {
        self.latency
            .time(name, kit::postgres::again_if_session_ended(operation))
            .await
    }

    /// The seat's hold, from the catalog's seat map (cached) and one statement.
    async fn decide_hold(
        &self,
        HoldSeat {
            user_id,
            option_id,
            seat_no,
            idempotency_key,
            admitted_by,
        }: HoldSeat,
    ) -> Result<Reservation, ReservationError> {
        let option = self.seat_prices.option(option_id).await?;
        // Only a token from the concert's own waiting room admits to its seats.
        if option.room != admitted_by {
            return Err(ReservationError::TokenWrongRoom);
        }
        let seat = option.seat(seat_no)?;
        let new = holds::NewHold {
            user_id,
            option_id,
            seat_no,
            concert_id: option.concert_id,
            room: admitted_by,
            grade: seat.grade,
            price_minor: seat.price_minor,
            hold: self.hold,
            max_seats_per_user: self.max_seats_per_user,
        };
        // A hold is safe to run again: the caller's own live hold is answered as it is.
        let reservation = match idempotency_key {
            None => self.store("hold", || holds::hold(&self.pool, &new)).await?,
            Some(key) => {
                let parameters = format!("{option_id}:{seat_no}");
                self.store("hold", || {
                    let scope = idempotency::Scope::new(user_id, &key, parameters.clone());
                    let new = new.clone();
                    idempotency::once(&self.pool, scope, move |tx| {
                        Box::pin(async move { holds::hold(tx, &new).await })
                    })
                })
                .await?
            }
        };
        Ok(reservation)
    }

    /// Seats per concert the catalog knows: its option lists (cached) and one count of the
    /// claims on all their options.
    async fn seats(
        &self,
        concert_ids: &[i64],
    ) -> Result<HashMap<i64, SeatCounts>, ReservationError> {
        let concerts: Vec<_> = self
            .concert_options
            .of_concerts(concert_ids)
            .await?
            .into_iter()
            .filter_map(|(concert_id, options)| Some((concert_id, options?)))
            .collect();
        let option_ids: Vec<i64> = concerts
            .iter()
            .flat_map(|(_, options)| options.iter().map(|option| option.id))
            .collect();
        let claims = if option_ids.is_empty() {
            HashMap::new()
        } else {
            self.store("outlook", || {
                holds::count_held_and_sold(&self.pool, &option_ids)
            })
            .await?
            .into_iter()
            .map(|(option_id, held, sold)| (option_id, (held, sold)))
            .collect()
        };
        Ok(concerts
            .into_iter()
            .map(|(concert_id, options)| (concert_id, SeatCounts::of_concert(&options, &claims)))
            .collect())
    }
}

/// The options of a count request: at most [`MAX_OPTIONS_PER_COUNT`], each a positive id.
fn counted_options(request: pb::CountTakenRequest) -> Result<Vec<i64>, Status> {
    let option_ids = request.concert_option_ids;
    if option_ids.len() > MAX_OPTIONS_PER_COUNT {
        return Err(ReservationError::invalid(
            "TOO_MANY_OPTIONS",
            format!("at most {MAX_OPTIONS_PER_COUNT} options per call"),
        )
        .into());
    }
    for id in &option_ids {
        positive_id(*id, "INVALID_CONCERT_OPTION_ID", "concertOptionId")?;
    }
    Ok(option_ids)
}
