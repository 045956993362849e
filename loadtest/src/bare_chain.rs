//! The floor of the queue pair's path, for `cost` to measure beside the real thing: an HTTP
//! request relayed as one gRPC call to a process that runs one Lua script in Redis and answers.
//! The hops a check-queue crosses (HTTP into the gateway, gRPC to the queue, a script in Redis)
//! with nothing of ours in them: no identity, JSON, limiter, metrics, tracing or queue logic. A
//! request's CPU there is what the shape costs before any work is done.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use axum::{Router, extract::State, http::StatusCode, routing::get};
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
}

/// `GET /` → one gRPC call upstream → `ok` (502 if the call failed).
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
        .with_state(HealthClient::new(channel));
    axum::serve(listener, app).await?;
    Ok(())
}

async fn relay_once(
    State(mut client): State<HealthClient<tonic::transport::Channel>>,
) -> (StatusCode, &'static str) {
    let request = HealthCheckRequest {
        service: String::new(),
    };
    match client.check(request).await {
        Ok(_) => (StatusCode::OK, "ok"),
        Err(_) => (StatusCode::BAD_GATEWAY, "upstream failed"),
    }
}

/// A grpc.health.v1 server whose Check runs [`SCRIPT`] over one multiplexed Redis connection.
pub async fn grpc(args: GrpcArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("listening on {}", listener.local_addr()?);
    serve_grpc(listener, &args.redis_url).await
}

async fn serve_grpc(listener: tokio::net::TcpListener, redis_url: &str) -> anyhow::Result<()> {
    let client = redis::Client::open(redis_url)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(DEADLINE))
        .set_response_timeout(Some(DEADLINE));
    let service = Scripted {
        redis: redis::aio::ConnectionManager::new_lazy_with_config(client, config)?,
        script: redis::Script::new(SCRIPT),
    };
    tonic::transport::Server::builder()
        .add_service(HealthServer::new(service))
        .serve_with_incoming(TcpIncoming::from(listener).with_nodelay(Some(true)))
        .await?;
    Ok(())
}

struct Scripted {
    redis: redis::aio::ConnectionManager,
    script: redis::Script,
}

#[tonic::async_trait]
impl Health for Scripted {
    async fn check(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let mut redis = self.redis.clone();
        let _exists: i64 = self
            .script
            .key(KEY)
            .invoke_async(&mut redis)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tokio::net::TcpListener;

    use super::*;
    use crate::client::Client;

    /// The relay in front of a bare gRPC server using `redis_url`; the relay's base URL.
    async fn chain(redis_url: &str) -> String {
        let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = format!("http://{}", grpc.local_addr().unwrap());
        let redis_url = redis_url.to_owned();
        tokio::spawn(async move { serve_grpc(grpc, &redis_url).await });
        let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", relay.local_addr().unwrap());
        tokio::spawn(async move { serve_relay(relay, &upstream).await });
        base
    }

    fn redis_url() -> String {
        std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
    }

    #[tokio::test]
    async fn a_request_to_the_relay_is_answered_after_the_grpc_server_ran_its_script() {
        let client = Client::new(&chain(&redis_url()).await);
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
        let client = Client::new(&chain(&format!("redis://127.0.0.1:{port}")).await);
        let started = std::time::Instant::now();
        let reply = client.get("/").await.expect("answered");
        assert_eq!(reply.status, 502);
        assert!(started.elapsed() < DEADLINE * 3, "{:?}", started.elapsed());
    }
}
