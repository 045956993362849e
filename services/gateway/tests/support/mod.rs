//! Spawns the real system on port 0 for HTTP tests: a queue service on a real Redis (own key
//! prefix, manual clock, no background admitter), catalog and reservation on fresh PostgreSQL
//! databases (unless a test needs the queue only), and a gateway in front of them.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

pub mod jwt;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use clap::Parser;
use kit::http_client::HttpClient;
use queue::{Clock, Policy, QueueStore, domain::Room};
use serde_json::Value;

pub const START_MS: i64 = 1_800_000_000_000;

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub struct System {
    pub http: Http,
    pub queue_store: QueueStore,
    pub now: Arc<AtomicI64>,
    /// Catalog and reservation, unless started with [`System::start_queue_only`].
    bookings: Option<Bookings>,
    pub prefix: String,
    /// The reservation service's gRPC URL (none for [`System::start_queue_only`]).
    pub reservation_url: Option<String>,
    /// The catalog's gRPC URL (none for [`System::start_queue_only`]).
    pub catalog_url: Option<String>,
    /// The queue service's gRPC URL, for a second gateway in front of the same backends.
    pub queue_url: String,
}

/// Catalog and reservation as started for a [`System`]: URLs and databases.
struct Backends {
    catalog_url: String,
    /// One URL, or a comma-separated list of replicas.
    reservation_url: String,
    reservation_db: sqlx::PgPool,
    catalog_db: sqlx::PgPool,
}

/// The databases of the catalog and reservation services behind a [`System`].
struct Bookings {
    reservation_db: sqlx::PgPool,
    catalog_db: sqlx::PgPool,
}

/// A backend URL nothing listens on: a gateway sends the calls of backends a test did not
/// start there, so a test that needed one fails with 503 instead of passing by accident (or
/// reaching a system someone runs on the default ports).
pub const NO_BACKEND: &str = "http://127.0.0.1:9";

pub fn postgres_server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Catalog (fresh database, demo data) and reservation (fresh database) on port 0; returns
/// their URLs and the reservation and catalog databases.
pub async fn start_catalog_and_reservation() -> (String, String, sqlx::PgPool, sqlx::PgPool) {
    start_catalog_and_reservation_with(&[]).await
}

/// As [`start_catalog_and_reservation`], with extra reservation flags.
pub async fn start_catalog_and_reservation_with(
    reservation_flags: &[&str],
) -> (String, String, sqlx::PgPool, sqlx::PgPool) {
    let (catalog_url, replicas, reservation_pool, catalog_pool) =
        start_catalog_and_reservation_replicas(1, reservation_flags).await;
    let urls: Vec<String> = replicas
        .into_iter()
        .map(ReservationReplica::serve_on)
        .collect();
    let url = urls.join(",");
    (catalog_url, url, reservation_pool, catalog_pool)
}

/// Catalog (fresh database, demo data) and `replicas` reservation services on one fresh
/// database, each on port 0 with its own metrics port; returns the catalog's URL, the
/// replicas, and the reservation and catalog databases.
pub async fn start_catalog_and_reservation_replicas(
    replicas: usize,
    reservation_flags: &[&str],
) -> (String, Vec<ReservationReplica>, sqlx::PgPool, sqlx::PgPool) {
    let server = postgres_server_url();
    let demo = catalog::seed::SeedArgs {
        concerts: 1,
        options_per_concert: 10,
        seats_per_option: 50,
    };
    let (catalog_addr, pool) = catalog::testing::spawn_seeded(&server, demo)
        .await
        .expect("catalog starts");
    let catalog_url = format!("http://{catalog_addr}");

    let reservation_db = kit::postgres::fresh_database(&server)
        .await
        .expect("reservation database");
    let mut started = Vec::new();
    for _ in 0..replicas {
        started.push(
            ReservationReplica::start(&reservation_db, &catalog_url, reservation_flags).await,
        );
    }
    let reservation_pool = sqlx::PgPool::connect(&reservation_db)
        .await
        .expect("reservation pool");
    (catalog_url, started, reservation_pool, pool)
}

/// One reservation service on port 0, until [`ReservationReplica::stop`].
pub struct ReservationReplica {
    pub url: String,
    pub metrics_addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl ReservationReplica {
    pub async fn start(database_url: &str, catalog_url: &str, flags: &[&str]) -> Self {
        let database_flag = format!("--database-url={database_url}");
        let catalog_flag = format!("--catalog-url={catalog_url}");
        let mut args = vec![
            "reservation",
            "--listen-addr=127.0.0.1:0",
            "--metrics-addr=127.0.0.1:0",
            database_flag.as_str(),
            catalog_flag.as_str(),
            "--db-pool-size=16",
        ];
        args.extend_from_slice(flags);
        let config = reservation::Config::parse_from(args);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let started = reservation::start(config, async {
            let _ = stopped.await;
        })
        .await
        .expect("reservation starts");
        Self {
            url: format!("http://{}", started.addr),
            metrics_addr: started.metrics_addr,
            stop,
            served: tokio::spawn(started.serve),
        }
    }

    /// Lets it serve until the test ends; its URL.
    pub fn serve_on(self) -> String {
        // Never sent, never dropped: a dropped sender would stop the replica.
        std::mem::forget(self.stop);
        self.url
    }

    /// Stops it as SIGTERM would: no new connections, the calls in flight finished.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.served.await.expect("join").expect("served");
    }
}

impl System {
    pub async fn start(policy: Policy) -> Self {
        Self::start_with(policy, &[]).await
    }

    /// As [`System::start`], with extra gateway flags (e.g. `--auth=jwt …`).
    pub async fn start_with(policy: Policy, gateway_flags: &[&str]) -> Self {
        Self::start_configured(policy, gateway_flags, &[]).await
    }

    /// A system whose users may hold any number of seats: for tests about something else
    /// (one winner per seat, sums) that need one user to hold many.
    pub async fn start_without_seat_limit(policy: Policy) -> Self {
        Self::start_configured(policy, &[], &["--max-seats-per-user=0"]).await
    }

    /// As [`System::start`], with extra gateway and reservation flags.
    pub async fn start_configured(
        policy: Policy,
        gateway_flags: &[&str],
        reservation_flags: &[&str],
    ) -> Self {
        Self::start_parts(policy, gateway_flags, Some(reservation_flags)).await
    }

    /// Only the queue service and the gateway: for the waiting-room routes.
    pub async fn start_queue_only(policy: Policy) -> Self {
        Self::start_parts(policy, &[], None).await
    }

    /// A system whose gateway balances over `replicas` reservation services on one database
    /// (RESERVATION_URL lists them all); returns the replicas too.
    pub async fn start_with_reservation_replicas(
        policy: Policy,
        replicas: usize,
    ) -> (Self, Vec<ReservationReplica>) {
        let (catalog_url, started, reservation_db, catalog_db) =
            start_catalog_and_reservation_replicas(replicas, &[]).await;
        let urls: Vec<&str> = started.iter().map(|replica| replica.url.as_str()).collect();
        let reservation_url = urls.join(",");
        let backends = Backends {
            catalog_url,
            reservation_url,
            reservation_db,
            catalog_db,
        };
        (Self::start_on(policy, &[], Some(backends)).await, started)
    }

    async fn start_parts(
        policy: Policy,
        gateway_flags: &[&str],
        reservation_flags: Option<&[&str]>,
    ) -> Self {
        let backends = match reservation_flags {
            Some(flags) => {
                let (catalog_url, reservation_url, reservation_db, catalog_db) =
                    start_catalog_and_reservation_with(flags).await;
                Some(Backends {
                    catalog_url,
                    reservation_url,
                    reservation_db,
                    catalog_db,
                })
            }
            None => None,
        };
        Self::start_on(policy, gateway_flags, backends).await
    }

    async fn start_on(policy: Policy, gateway_flags: &[&str], backends: Option<Backends>) -> Self {
        let prefix = format!("test:{}", uuid::Uuid::new_v4().simple());
        let (clock, now) = Clock::manual(START_MS);
        let queue_store =
            QueueStore::connect(&redis_url(), 16, &prefix, policy, Duration::from_secs(5))
                .expect("store")
                .with_clock(clock);
        let queue_config = queue::Config::parse_from([
            "queue",
            "--listen-addr=127.0.0.1:0",
            "--metrics-addr=127.0.0.1:0",
            "--admitter=false",
            &format!("--redis-url={}", redis_url()),
            &format!("--key-prefix={prefix}"),
        ]);
        let (queue_addr, serve) =
            queue::build_with_store(queue_config, queue_store.clone(), std::future::pending())
                .await
                .expect("queue starts");
        tokio::spawn(serve);
        // Queue-only: the gateway's catalog and reservation stay at NO_BACKEND.
        let mut backend_flags = Vec::new();
        let mut bookings = None;
        let mut reservation = None;
        let mut catalog = None;
        if let Some(backends) = backends {
            backend_flags.push(format!("--catalog-url={}", backends.catalog_url));
            backend_flags.push(format!("--reservation-url={}", backends.reservation_url));
            bookings = Some(Bookings {
                reservation_db: backends.reservation_db,
                catalog_db: backends.catalog_db,
            });
            reservation = Some(backends.reservation_url);
            catalog = Some(backends.catalog_url);
        }
        let mut flags: Vec<&str> = backend_flags.iter().map(String::as_str).collect();
        flags.extend_from_slice(gateway_flags);
        let queue_url = format!("http://{queue_addr}");
        let http = Http::new(start_gateway(&queue_url, &flags).await);
        Self {
            http,
            queue_store,
            now,
            bookings,
            prefix,
            reservation_url: reservation,
            catalog_url: catalog,
            queue_url,
        }
    }

    /// The reservation service's own database, for checks against the store itself.
    pub fn reservation_db(&self) -> &sqlx::PgPool {
        &self.bookings().reservation_db
    }

    /// The catalog's database.
    pub fn catalog_db(&self) -> &sqlx::PgPool {
        &self.bookings().catalog_db
    }

    fn bookings(&self) -> &Bookings {
        self.bookings
            .as_ref()
            .expect("this test started the queue only; use System::start")
    }

    /// Issues tokens for `users` and admits them all; returns each user's ACTIVE token.
    pub async fn active_tokens(&self, users: impl IntoIterator<Item = i64>) -> Vec<(i64, String)> {
        let mut tokens = Vec::new();
        for user in users {
            let reply = self
                .http
                .post("/queue/issue-token", &format!(r#"{{"userId": {user}}}"#))
                .await;
            assert_eq!(reply.status, 200, "{}", reply.json);
            tokens.push((
                user,
                reply.json["token"].as_str().expect("token").to_owned(),
            ));
        }
        // Admission runs on the queue's manual clock: stepping it admits everyone.
        self.admit().await;
        loop {
            self.advance(1_000);
            let admission = self.queue_store.admit(Room::Default).await.expect("admit");
            if admission.waiting == 0 {
                break;
            }
        }
        tokens
    }

    /// A reservation's status as the API reports it.
    pub async fn reservation_status(&self, id: i64) -> serde_json::Value {
        self.http.get(&format!("/api/reservations/{id}")).await.json["status"].clone()
    }

    /// Moves every hold's deadline into the past, as if the hold time had run out.
    pub async fn expire_holds(&self) {
        reservation::testing::run_out_holds(self.reservation_db(), None)
            .await
            .expect("run out the holds");
    }

    pub fn advance(&self, ms: i64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }

    pub async fn admit(&self) -> u64 {
        self.queue_store
            .admit(Room::Default)
            .await
            .expect("admit")
            .admitted
    }
}

/// A gateway on port 0 in front of `queue_url`, with extra flags; catalog and reservation are
/// [`NO_BACKEND`] unless the flags name them.
pub async fn start_gateway(queue_url: &str, extra: &[&str]) -> SocketAddr {
    let mut args = vec![
        "gateway".to_owned(),
        "--listen-addr=127.0.0.1:0".to_owned(),
        "--metrics-addr=127.0.0.1:0".to_owned(),
        format!("--queue-url={queue_url}"),
    ];
    for backend in ["--catalog-url", "--reservation-url"] {
        if !extra.iter().any(|arg| arg.starts_with(backend)) {
            args.push(format!("{backend}={NO_BACKEND}"));
        }
    }
    // The original clients' mode unless a test says otherwise.
    if !extra.iter().any(|arg| arg.starts_with("--auth")) {
        args.push("--auth=trusted".to_owned());
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let config = gateway::Config::parse_from(args);
    let (addr, serve) = gateway::build(config, std::future::pending())
        .await
        .expect("gateway starts");
    tokio::spawn(serve);
    addr
}

pub fn default_policy() -> Policy {
    Policy {
        admission_rate: 1000.0,
        active_cap: 0,
        active_ttl: Duration::from_secs(600),
        waiting_grace: Duration::from_secs(60),
        // Admitted users keep their slot however long they take, unless a test says otherwise.
        admitted_idle: Duration::ZERO,
    }
}

/// The gateway seen as a client sees it (kit's HTTP client): status and parsed JSON, and the
/// test fails on a non-JSON body or no answer within 10 s.
#[derive(Clone)]
pub struct Http {
    addr: SocketAddr,
    client: HttpClient,
}

pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub json: Value,
    /// Whether the response carried a Location header.
    pub location: bool,
}

impl Http {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            client: HttpClient::for_addr(addr),
        }
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        content_type: Option<&str>,
    ) -> Reply {
        self.send_with(method, path, body, content_type, &[]).await
    }

    pub async fn send_with(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        content_type: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut call = self.client.request(method, path);
        if let Some(content_type) = content_type {
            call = call.header("content-type", content_type);
        }
        for (name, value) in headers {
            call = call.header(*name, *value);
        }
        if let Some(body) = body {
            call = call.body(body.to_owned());
        }
        let response = call.send().await.expect("the gateway answers within 10 s");
        let json = response.try_json().unwrap_or_else(|_| {
            panic!(
                "{method} {path} -> {} with a non-JSON body: {:?}",
                response.status,
                response.text()
            )
        });
        Reply {
            status: response.status,
            content_type: response.header("content-type").unwrap_or("").to_owned(),
            json,
            location: response.header("location").is_some(),
        }
    }

    pub async fn post(&self, path: &str, body: &str) -> Reply {
        self.send("POST", path, Some(body), Some("application/json"))
            .await
    }

    /// POST with extra headers (e.g. Idempotency-Key).
    pub async fn post_with(&self, path: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
        self.send_with("POST", path, Some(body), Some("application/json"), headers)
            .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None, None).await
    }
}

/// Asserts a JSON error of the contract's shape with this status and code.
#[track_caller]
pub fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "body: {}", reply.json);
    assert_eq!(reply.json["status"], status, "body: {}", reply.json);
    assert_eq!(reply.json["code"], code, "body: {}", reply.json);
    assert!(
        reply.json["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "body: {}",
        reply.json
    );
    assert!(
        reply.content_type.starts_with("application/json"),
        "content-type {}",
        reply.content_type
    );
}

/// The operator's RPCs of a stand-in queue service that does not serve them (tests that fake
/// the queue to make it slow or late): `support::no_operator_rpcs!();` inside the
/// `#[tonic::async_trait]` impl. Spelled as the boxed futures `async_trait` makes, because the
/// attribute runs before this macro is expanded.
#[allow(unused_macros)]
macro_rules! no_operator_rpcs {
    () => {
        crate::support::no_operator_rpcs! {
            list_rooms(ListRoomsRequest) -> ListRoomsResponse;
            get_room_history(GetRoomHistoryRequest) -> RoomHistory;
            update_room_settings(UpdateRoomSettingsRequest) -> RoomFigures;
            list_setting_changes(ListSettingChangesRequest) -> ListSettingChangesResponse;
        }
    };
    ($($method:ident($request:ident) -> $reply:ident;)+) => {
        $(
            fn $method<'life0, 'async_trait>(
                &'life0 self,
                _: tonic::Request<ticketing_proto::queue::v1::$request>,
            ) -> std::pin::Pin<
                Box<
                    dyn std::future::Future<
                            Output = Result<
                                tonic::Response<ticketing_proto::queue::v1::$reply>,
                                tonic::Status,
                            >,
                        > + Send
                        + 'async_trait,
                >,
            >
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                Box::pin(async { Err(tonic::Status::unimplemented("a stand-in queue")) })
            }
        )*
    };
}
#[allow(unused_imports)]
pub(crate) use no_operator_rpcs;
