//! The reservation service on port 0 with a real catalog in front of it, each on its own fresh
//! database: concert 1 (options 1-2) is admitted by the shared default room, concert 2
//! (options 3-4) by its own room; every option has 30 seats on sale.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use clap::Parser;
use kit::grpc::TracedChannel as Channel;
use ticketing_proto::reservation::v1::{
    self as pb, reservation_service_client::ReservationServiceClient,
};

pub type Client = ReservationServiceClient<Channel>;

/// A concert admitted by the shared default room, with options 1 and 2.
pub const DEFAULT_ROOM_CONCERT: i64 = 1;
/// A concert with its own waiting room, with options 3 and 4.
pub const OWN_ROOM_CONCERT: i64 = 2;
pub const SEATS_PER_OPTION: i32 = 30;

pub struct System {
    pub client: Client,
    /// The reservation service's own database, to age holds and count rows.
    pub db: sqlx::PgPool,
    /// The catalog's database, to add options as an operator would.
    pub catalog_db: sqlx::PgPool,
    /// Where the reservation service's /metrics listens.
    pub metrics_addr: std::net::SocketAddr,
}

pub fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh database with this service's schema, and no service on it.
pub async fn migrated_database() -> sqlx::PgPool {
    let url = kit::postgres::fresh_database(&server_url())
        .await
        .expect("fresh database");
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    reservation::MIGRATOR.run(&pool).await.expect("migrate");
    pool
}

impl System {
    /// Catalog and reservation, the latter with `RESERVATION_MAX_SEATS_PER_USER` = `max_seats`.
    pub async fn start(max_seats: u32) -> Self {
        let reservation_db = kit::postgres::fresh_database(&server_url())
            .await
            .expect("reservation database");
        Self::start_on(max_seats, &reservation_db).await
    }

    /// Like [`System::start`], with the reservation service on the database `reservation_db`
    /// (migrated at start-up as a deployment's is).
    pub async fn start_on(max_seats: u32, reservation_db: &str) -> Self {
        Self::start_with(max_seats, reservation_db, &[]).await
    }

    /// Like [`System::start_on`], with more of the reservation service's flags.
    pub async fn start_with(max_seats: u32, reservation_db: &str, flags: &[&str]) -> Self {
        let seed = catalog::seed::SeedArgs {
            concerts: 2,
            options_per_concert: 2,
            seats_per_option: SEATS_PER_OPTION,
        };
        Self::start_seeded(seed, max_seats, reservation_db, flags).await
    }

    /// The catalog seeded with `seed` (concert 2, if any, in its own room), and the
    /// reservation service with `flags` added.
    pub async fn start_seeded(
        seed: catalog::seed::SeedArgs,
        max_seats: u32,
        reservation_db: &str,
        flags: &[&str],
    ) -> Self {
        let (catalog_addr, catalog_pool) = catalog::testing::spawn_seeded(&server_url(), seed)
            .await
            .expect("catalog starts");
        catalog::testing::give_own_room(&catalog_pool, OWN_ROOM_CONCERT)
            .await
            .expect("own room");

        let args = [
            "reservation".to_owned(),
            "--listen-addr=127.0.0.1:0".to_owned(),
            "--metrics-addr=127.0.0.1:0".to_owned(),
            format!("--database-url={reservation_db}"),
            format!("--catalog-url=http://{catalog_addr}"),
            "--db-pool-size=32".to_owned(),
            format!("--max-seats-per-user={max_seats}"),
        ];
        let config = reservation::Config::parse_from(
            args.into_iter()
                .chain(flags.iter().map(|flag| (*flag).to_owned())),
        );
        let started = reservation::start(config, std::future::pending())
            .await
            .expect("reservation starts");
        let (addr, metrics_addr) = (started.addr, started.metrics_addr);
        tokio::spawn(started.serve);
        let client = ReservationServiceClient::new(
            kit::grpc::channel(
                &format!("http://{addr}"),
                kit::grpc::ChannelTimeouts::default(),
            )
            .expect("channel"),
        );
        let db = sqlx::PgPool::connect(reservation_db)
            .await
            .expect("reservation pool");
        Self {
            client,
            db,
            catalog_db: catalog_pool,
            metrics_addr,
        }
    }

    pub async fn hold(
        &self,
        user_id: i64,
        option_id: i64,
        seat_no: i32,
        room: Option<pb::Room>,
    ) -> Result<pb::Reservation, tonic::Status> {
        self.hold_with_key(user_id, option_id, seat_no, room, None)
            .await
    }

    pub async fn hold_with_key(
        &self,
        user_id: i64,
        option_id: i64,
        seat_no: i32,
        room: Option<pb::Room>,
        idempotency_key: Option<String>,
    ) -> Result<pb::Reservation, tonic::Status> {
        self.client
            .clone()
            .hold_seat(pb::HoldSeatRequest {
                user_id,
                concert_option_id: option_id,
                seat_no,
                idempotency_key,
                admitted_by: room,
            })
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn pay(
        &self,
        reservation_id: i64,
        user_id: i64,
        room: Option<pb::Room>,
        idempotency_key: Option<String>,
    ) -> Result<pb::Payment, tonic::Status> {
        self.client
            .clone()
            .pay(pb::PayRequest {
                reservation_id,
                user_id,
                idempotency_key,
                replay_only: false,
                admitted_by: room,
            })
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn charge(&self, user_id: i64, amount_minor: i64) {
        self.client
            .clone()
            .charge_wallet(pb::ChargeWalletRequest {
                user_id,
                amount_minor,
                idempotency_key: None,
            })
            .await
            .expect("charge");
    }

    pub async fn balance(&self, user_id: i64) -> i64 {
        self.client
            .clone()
            .get_balance(pb::GetBalanceRequest { user_id })
            .await
            .expect("balance")
            .into_inner()
            .balance_minor
    }

    pub async fn reservation(&self, id: i64) -> pb::Reservation {
        self.client
            .clone()
            .get_reservation(pb::GetReservationRequest { reservation_id: id })
            .await
            .expect("reservation")
            .into_inner()
    }

    /// Moves the deadline of reservation `id` (and of its seat's claim) into the past, as if
    /// its hold time had run out.
    pub async fn expire(&self, id: i64) {
        reservation::testing::run_out_holds(&self.db, Some(id))
            .await
            .expect("run out the hold");
    }

    /// Reservation rows of `user_id` in any status.
    pub async fn rows_of(&self, user_id: i64) -> i64 {
        let (count,): (i64,) =
            sqlx::query_as("select count(*) from reservations where user_id = $1")
                .bind(user_id)
                .fetch_one(&self.db)
                .await
                .expect("count");
        count
    }
}

/// The shared default room (a token issued without a concertId).
pub fn default_room() -> Option<pb::Room> {
    Some(pb::Room { concert_id: None })
}

/// The own waiting room of `concert_id`.
pub fn room_of(concert_id: i64) -> Option<pb::Room> {
    Some(pb::Room {
        concert_id: Some(concert_id),
    })
}

/// The gRPC code and stable error code of a call that must fail.
pub fn failure<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> (tonic::Code, String) {
    let status = result.expect_err("the call must fail");
    let code = kit::error_code::of(&status).unwrap_or("").to_owned();
    (status.code(), code)
}

pub fn seat_limit_reached() -> (tonic::Code, String) {
    (tonic::Code::FailedPrecondition, "SEAT_LIMIT_REACHED".into())
}

pub fn wrong_room() -> (tonic::Code, String) {
    (tonic::Code::PermissionDenied, "TOKEN_WRONG_ROOM".into())
}

pub fn seat_taken() -> (tonic::Code, String) {
    (tonic::Code::AlreadyExists, "SEAT_TAKEN".into())
}
