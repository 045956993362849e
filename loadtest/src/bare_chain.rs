//! The floor of the queue pair's path, for `cost` to measure beside the real thing: an HTTP
//! request relayed as one gRPC call to a process that does one thing in Redis and answers.
//! The hops a check-queue crosses (HTTP into the gateway, gRPC to the queue, a script in Redis)
//! with nothing of ours in them: no identity, JSON, limiter, metrics, tracing or queue logic. A
//! request's CPU there is what the shape costs before any work is done. The same hops can carry
//! the queue's own store instead of the one-command script ([`Work`]): the bare hops plus the
//! work check-queue and issue-token do in Redis (the queue's scripts and the Rust that calls
//! them), without the services around it.

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicI64, Ordering},
    time::Duration,
};

use anyhow::Context;
use axum::{
    Router,
    extract::{Path, State},
    http::StatusCode,
    routing::get,
};
use clap::Parser;
use futures::StreamExt;
use queue::{
    QueueStore,
    domain::{Room, Token, UserId},
};
use redis::AsyncCommands;
use tokio::sync::OnceCell;
use tonic::{Request, Response, Status, transport::server::TcpIncoming};
use tonic_health::pb::{
    HealthCheckRequest, HealthCheckResponse,
    health_check_response::ServingStatus,
    health_client::HealthClient,
    health_server::{Health, HealthServer},
};

/// Every call here waits at most this long (the services' own deadline).
const DEADLINE: Duration = Duration::from_secs(1);

/// The script each call runs: one read, as the queue's steps are one script each.
const SCRIPT: &str = "return redis.call('EXISTS', KEYS[1])";
const KEY: &str = "loadtest:bare-chain";
/// The user whose token `/poll` polls; `/issue` issues to the users after it.
const POLLING_USER: i64 = 1;

/// What one call does in Redis: the relay's path names it (`/` for the one-command script,
/// `/poll`, `/issue`) and passes it on as the Check's service name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// One read in a one-command script: the hops alone.
    OneCommand,
    /// The queue's store polls a waiting token (its status script), as check-queue does.
    Poll,
    /// The queue's store issues a token to a user new to the room (its issue script), as
    /// issue-token does for a new user.
    Issue,
}

impl Work {
    /// The relay's path, and the Check's service name without its slash.
    pub fn path(self) -> &'static str {
        match self {
            Work::OneCommand => "/",
            Work::Poll => "/poll",
            Work::Issue => "/issue",
        }
    }

    fn named(service: &str) -> Option<Self> {
        [Work::OneCommand, Work::Poll, Work::Issue]
            .into_iter()
            .find(|work| &work.path()[1..] == service)
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct RelayArgs {
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// The bare gRPC server (`bare-grpc`), e.g. http://127.0.0.1:50051.
    #[arg(long)]
    pub upstream: String,
}

#[derive(clap::Args, Debug, Clone)]
pub struct GrpcArgs {
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// The key prefix of the queue store's room (`/poll`, `/issue`): one no queue service
    /// admits from, so that the polled token stays waiting. [`forget`] deletes its keys.
    #[arg(long, default_value = "loadtest-floor")]
    pub key_prefix: String,
}

/// `GET /` (or `/poll`, `/issue`) → one gRPC call upstream → `ok` (502 if the call failed).
pub async fn relay(args: RelayArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    // The parent reads this line to learn the port.
    println!("listening on {}", listener.local_addr()?);
    serve_relay(listener, &args.upstream).await
}

async fn serve_relay(listener: tokio::net::TcpListener, upstream: &str) -> anyhow::Result<()> {
    let channel = tonic::transport::Endpoint::from_shared(upstream.to_owned())
        .with_context(|| format!("bad upstream {upstream:?}"))?
        .connect_timeout(DEADLINE)
        .timeout(DEADLINE)
        .connect_lazy();
    let app = Router::new()
        .route("/", get(relay_once))
        .route("/{work}", get(relay_once))
        .with_state(HealthClient::new(channel));
    axum::serve(listener, app).await?;
    Ok(())
}

/// Relays to the Check whose service name is the path's work (none for `/`).
async fn relay_once(
    State(mut client): State<HealthClient<tonic::transport::Channel>>,
    work: Option<Path<String>>,
) -> (StatusCode, &'static str) {
    let service = work.map(|Path(work)| work).unwrap_or_default();
    match client.check(HealthCheckRequest { service }).await {
        Ok(_) => (StatusCode::OK, "ok"),
        Err(status) if status.code() == tonic::Code::NotFound => {
            (StatusCode::NOT_FOUND, "no such work")
        }
        Err(_) => (StatusCode::BAD_GATEWAY, "upstream failed"),
    }
}

/// A grpc.health.v1 server whose Check does one [`Work`] in Redis: [`SCRIPT`] over one
/// multiplexed connection, or a step of the queue's store built as the queue service builds it.
pub async fn grpc(args: GrpcArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("listening on {}", listener.local_addr()?);
    serve_grpc(listener, &args.redis_url, &args.key_prefix).await
}

async fn serve_grpc(
    listener: tokio::net::TcpListener,
    redis_url: &str,
    key_prefix: &str,
) -> anyhow::Result<()> {
    let client = redis::Client::open(redis_url)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(DEADLINE))
        .set_response_timeout(Some(DEADLINE));
    // The queue service's own configuration (its defaults and QUEUE_* environment) on this
    // Redis and prefix, so that the store connects and calls as the service's does.
    let queue = queue::Config::try_parse_from([
        "queue",
        "--redis-url",
        redis_url,
        "--key-prefix",
        key_prefix,
    ])?;
    let service = Worker {
        redis: redis::aio::ConnectionManager::new_lazy_with_config(client, config)?,
        script: redis::Script::new(SCRIPT),
        store: queue::store(&queue)?,
        polled: OnceCell::new(),
        next_user: AtomicI64::new(POLLING_USER + 1),
    };
    tonic::transport::Server::builder()
        .add_service(HealthServer::new(service))
        .serve_with_incoming(TcpIncoming::from(listener).with_nodelay(Some(true)))
        .await?;
    Ok(())
}

struct Worker {
    redis: redis::aio::ConnectionManager,
    script: redis::Script,
    store: QueueStore,
    /// The waiting token every `/poll` polls, issued on the first.
    polled: OnceCell<Token>,
    /// The next user `/issue` issues a token to.
    next_user: AtomicI64,
}

impl Worker {
    async fn work(&self, work: Work) -> anyhow::Result<()> {
        match work {
            Work::OneCommand => {
                let mut redis = self.redis.clone();
                let _exists: i64 = self.script.key(KEY).invoke_async(&mut redis).await?;
            }
            Work::Poll => {
                let token = self
                    .polled
                    .get_or_try_init(|| async {
                        let user = UserId::new(POLLING_USER)?;
                        Ok::<_, queue::error::QueueError>(
                            self.store.issue(user, Room::Default).await?.token,
                        )
                    })
                    .await?;
                self.store.status(*token).await?;
            }
            Work::Issue => {
                let user = UserId::new(self.next_user.fetch_add(1, Ordering::Relaxed))?;
                self.store.issue(user, Room::Default).await?;
            }
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl Health for Worker {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let work = Work::named(&request.get_ref().service)
            .ok_or_else(|| Status::not_found("no such work"))?;
        self.work(work)
            .await
            .map_err(|error| Status::unavailable(error.to_string()))?;
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    type WatchStream = futures::stream::Empty<Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("Check only"))
    }
}

/// Deletes the keys the queue store's work left under `key_prefix` in the Redis at `redis_url`
/// (waiting tokens expire, their room's sets do not).
pub async fn forget(redis_url: &str, key_prefix: &str) -> anyhow::Result<u64> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(DEADLINE))
        .set_response_timeout(Some(DEADLINE));
    let mut scan = redis::Client::open(redis_url)?
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .context("connecting to Redis")?;
    // Multiplexed: the deletes go on the same connection while the scan holds its handle.
    let mut unlink = scan.clone();
    let mut pages = scan
        .scan_match::<_, String>(format!("{key_prefix}:*"))
        .await
        .context("scanning Redis")?
        .chunks(1000);
    let mut deleted = 0;
    while let Some(page) = pages.next().await {
        let keys = page
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .context("scanning Redis")?;
        let gone: u64 = unlink.unlink(&keys).await.context("deleting from Redis")?;
        deleted += gone;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tokio::net::TcpListener;

    use super::*;
    use crate::client::Client;

    /// The relay in front of a bare gRPC server using `redis_url` (the queue store's keys under
    /// `key_prefix`); the relay's base URL.
    async fn chain(redis_url: &str, key_prefix: &str) -> String {
        let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = format!("http://{}", grpc.local_addr().unwrap());
        let (redis_url, key_prefix) = (redis_url.to_owned(), key_prefix.to_owned());
        tokio::spawn(async move { serve_grpc(grpc, &redis_url, &key_prefix).await });
        let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", relay.local_addr().unwrap());
        tokio::spawn(async move { serve_relay(relay, &upstream).await });
        base
    }

    /// A key prefix no other test uses.
    fn own_prefix(test: &str) -> String {
        format!("loadtest-test:{test}:{}", fastrand::u64(..))
    }

    async fn zcard(key: &str) -> u64 {
        let client = redis::Client::open(redis_url()).unwrap();
        let mut redis = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("ZCARD")
            .arg(key)
            .query_async(&mut redis)
            .await
            .unwrap()
    }

    async fn keys_under(prefix: &str) -> Vec<String> {
        let client = redis::Client::open(redis_url()).unwrap();
        let mut redis = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("KEYS")
            .arg(format!("{prefix}:*"))
            .query_async(&mut redis)
            .await
            .unwrap()
    }

    fn redis_url() -> String {
        std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
    }

    #[tokio::test]
    async fn a_request_to_the_relay_is_answered_after_the_grpc_server_ran_its_script() {
        let client = Client::new(&chain(&redis_url(), &own_prefix("one-command")).await);
        for _ in 0..20 {
            let reply = client.get("/").await.expect("answered");
            assert_eq!(reply.status, 200);
        }
    }

    /// The script is on the path: with its Redis unreachable, the relay answers 502 within the
    /// deadline instead of `ok`.
    #[tokio::test]
    async fn with_redis_unreachable_the_relay_answers_502_within_its_deadline() {
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let prefix = own_prefix("unreachable");
        let client = Client::new(&chain(&format!("redis://127.0.0.1:{port}"), &prefix).await);
        for work in [Work::OneCommand, Work::Poll, Work::Issue] {
            let started = std::time::Instant::now();
            let reply = client.get(work.path()).await.expect("answered");
            assert_eq!(reply.status, 502, "{work:?}");
            assert!(started.elapsed() < DEADLINE * 3, "{:?}", started.elapsed());
        }
    }

    #[tokio::test]
    async fn polls_through_the_chain_keep_one_token_waiting_in_the_queue_stores_room() {
        let prefix = own_prefix("poll");
        let client = Client::new(&chain(&redis_url(), &prefix).await);
        for _ in 0..10 {
            let reply = client.get(Work::Poll.path()).await.expect("answered");
            assert_eq!(reply.status, 200, "{}", reply.json);
        }
        assert_eq!(zcard(&format!("{prefix}:{{q:default}}:wait")).await, 1);
        assert_eq!(zcard(&format!("{prefix}:{{q:default}}:seen")).await, 1);
    }

    #[tokio::test]
    async fn each_issue_through_the_chain_puts_a_new_user_in_line() {
        let prefix = own_prefix("issue");
        let client = Client::new(&chain(&redis_url(), &prefix).await);
        for _ in 0..7 {
            let reply = client.get(Work::Issue.path()).await.expect("answered");
            assert_eq!(reply.status, 200, "{}", reply.json);
        }
        assert_eq!(zcard(&format!("{prefix}:{{q:default}}:wait")).await, 7);
    }

    #[tokio::test]
    async fn an_unknown_work_is_answered_404_by_the_relay() {
        let client = Client::new(&chain(&redis_url(), &own_prefix("unknown")).await);
        let reply = client.get("/sleep").await.expect("answered");
        assert_eq!(reply.status, 404);
    }

    #[tokio::test]
    async fn forget_deletes_every_key_the_store_left_under_its_prefix_and_no_other() {
        let prefix = own_prefix("forget");
        let neighbour = own_prefix("forget-neighbour");
        for prefix in [&prefix, &neighbour] {
            let client = Client::new(&chain(&redis_url(), prefix).await);
            for work in [Work::Issue, Work::Issue, Work::Poll] {
                assert_eq!(client.get(work.path()).await.expect("answered").status, 200);
            }
        }
        let before = keys_under(&prefix).await.len();
        assert!(before >= 5, "{before} keys");
        assert_eq!(forget(&redis_url(), &prefix).await.unwrap(), before as u64);
        assert!(keys_under(&prefix).await.is_empty());
        assert!(!keys_under(&neighbour).await.is_empty());
        forget(&redis_url(), &neighbour).await.unwrap();
    }
}
