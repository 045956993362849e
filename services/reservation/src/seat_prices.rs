//! Seat existence and prices, and the concert and waiting room of each option, asked of the
//! catalog over gRPC and cached per option: a seat map does not change once its option is on
//! sale. Concurrent first requests for an option share one catalog call.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use kit::grpc::TracedChannel as Channel;
use ticketing_proto::catalog::v1::{self as catalog, catalog_service_client::CatalogServiceClient};
use tokio::sync::OnceCell;

use crate::{domain::Room, error::ReservationError};

/// Options cached at most; past it the cache starts over (options on sale at once are few).
const MAX_OPTIONS: usize = 10_000;

/// What a hold needs to know about a seat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeatPrice {
    pub grade: String,
    pub price_minor: i64,
}

/// One option's seat map, as a hold needs it.
#[derive(Debug)]
pub struct OptionSeats {
    /// The option's concert: the per-user seat limit counts per concert.
    pub concert_id: i64,
    /// The waiting room that admits to the concert.
    pub room: Room,
    sale_opens_at_ms: i64,
    seats: HashMap<i32, SeatPrice>,
}

impl OptionSeats {
    /// The seat's grade and price, if the option is on sale and has that seat.
    pub fn seat(&self, seat_no: i32) -> Result<SeatPrice, ReservationError> {
        if now_ms() < self.sale_opens_at_ms {
            return Err(ReservationError::SaleNotOpen);
        }
        self.seats
            .get(&seat_no)
            .cloned()
            .ok_or(ReservationError::SeatNotFound)
    }
}

/// One option's seat map, fetched once however many callers ask at the same time.
type SharedFetch = Arc<OnceCell<Arc<OptionSeats>>>;

#[derive(Clone)]
pub struct SeatPrices {
    catalog: CatalogServiceClient<Channel>,
    deadline: Duration,
    options: Arc<Mutex<HashMap<i64, SharedFetch>>>,
}

impl SeatPrices {
    pub fn new(channel: Channel, deadline: Duration) -> Self {
        Self {
            catalog: CatalogServiceClient::new(channel),
            deadline,
            options: Arc::default(),
        }
    }

    /// The option's seat map, concert and room; `OptionNotFound` for an unknown option.
    pub async fn option(&self, option_id: i64) -> Result<Arc<OptionSeats>, ReservationError> {
        let cell = {
            let mut options = self
                .options
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if options.len() >= MAX_OPTIONS && !options.contains_key(&option_id) {
                options.clear();
            }
            options.entry(option_id).or_default().clone()
        };
        cell.get_or_try_init(|| self.fetch(option_id))
            .await
            .cloned()
    }

    async fn fetch(&self, option_id: i64) -> Result<Arc<OptionSeats>, ReservationError> {
        kit::trace::internal("catalog GetSeatMap", async move {
            let request = catalog::GetSeatMapRequest {
                concert_option_id: option_id,
            };
            // A read: asked again of another replica when one is cut off on its way.
            let answer = kit::grpc::retrying(true, self.deadline, |left| {
                let mut client = self.catalog.clone();
                let request = kit::grpc::request(request, left);
                async move { Ok(client.get_seat_map(request).await?.into_inner()) }
            })
            .await;
            let map = match answer {
                Ok(map) => map,
                Err(status) if status.code() == tonic::Code::NotFound => {
                    return Err(ReservationError::OptionNotFound);
                }
                Err(status) => return Err(ReservationError::Catalog(status)),
            };
            // A seat map without its concert (a catalog from before rooms) would put the option in
            // no room at all: refuse it rather than cache it, so the next hold asks again.
            if map.concert_id <= 0 {
                return Err(ReservationError::Catalog(tonic::Status::internal(format!(
                    "the seat map of option {option_id} names no concert"
                ))));
            }
            Ok(Arc::new(OptionSeats {
                concert_id: map.concert_id,
                room: Room::of_concert(map.concert_id, map.shared_room),
                sale_opens_at_ms: map.sale_opens_at_unix_ms,
                seats: map
                    .seats
                    .into_iter()
                    .map(|seat| {
                        (
                            seat.seat_no,
                            SeatPrice {
                                grade: seat.grade,
                                price_minor: seat.price_minor,
                            },
                        )
                    })
                    .collect(),
            }))
        })
        .await
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}
