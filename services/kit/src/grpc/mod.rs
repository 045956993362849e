//! gRPC server and channel set-up shared by every service, with deadlines everywhere:
//! a server-side request timeout, client connect and per-call timeouts, HTTP/2 keep-alives
//! so dead peers are noticed, and a bounded connection age so clients spread over new
//! replicas. Channels balance per call over a service's replicas (`balance`, fed by `target`),
//! and `retry` sends a failed call again on another replica when that is safe.

mod balance;
pub mod raw;
pub mod retry;
pub mod target;

use std::{future::Future, net::SocketAddr, time::Duration};

use tokio::net::TcpListener;
use tower::layer::util::{Identity, Stack};

use crate::trace::{GrpcTrace, GrpcTraceLayer};
use tonic::transport::{Server, server::TcpIncoming};

pub use balance::{Channel, DNS_REFRESH, Discovery, Resolve};
pub use retry::retrying;
pub use target::Target;

/// Limits applied to every gRPC server.
#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    /// Longest a single call may run before the server answers DEADLINE_EXCEEDED.
    pub request_timeout: Duration,
    /// Concurrent calls per connection before the server pushes back.
    pub concurrency_per_connection: usize,
    /// A connection older than this is asked to close (GOAWAY, then closed once its calls in
    /// flight are done, each within `request_timeout`): its client connects again and may land
    /// on another replica, so new replicas get calls even from clients that do not re-resolve,
    /// and no client stays on one replica for good. None: connections live on. There is no
    /// grace on top: tonic 0.14 with a grace skips the GOAWAY and cuts the connection at
    /// age + grace, failing calls in flight (kit's balancing test saw it), and every call here
    /// is unary and bounded anyway.
    pub max_connection_age: Option<Duration>,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(5),
            concurrency_per_connection: 1024,
            max_connection_age: Some(Duration::from_secs(DEFAULT_MAX_CONNECTION_AGE_SECS)),
        }
    }
}

const DEFAULT_MAX_CONNECTION_AGE_SECS: u64 = 60;

/// What every gRPC server reads from the environment (flattened into each backend's config).
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct ServerArgs {
    /// Seconds after which a client's connection is asked to close (GOAWAY, calls in flight
    /// finish): the client connects again, maybe to another replica, so new replicas get
    /// calls; 0 = never.
    #[arg(long, env = "GRPC_MAX_CONNECTION_AGE_SECS", default_value_t = DEFAULT_MAX_CONNECTION_AGE_SECS)]
    pub max_connection_age_secs: u64,
}

impl ServerArgs {
    /// The server limits these settings give, the rest at their defaults.
    pub fn limits(&self) -> ServerLimits {
        ServerLimits {
            max_connection_age: (self.max_connection_age_secs > 0)
                .then(|| Duration::from_secs(self.max_connection_age_secs)),
            ..ServerLimits::default()
        }
    }
}

/// A server with every call traced (continuing the caller's trace context).
pub type TracedServer = Server<Stack<GrpcTraceLayer, Identity>>;

/// A channel whose every call is traced and carries the current trace context.
pub type TracedChannel = GrpcTrace<Channel>;

/// A server builder with the shared timeouts, transport settings and call tracing.
pub fn server(limits: ServerLimits) -> TracedServer {
    let mut builder = Server::builder()
        .timeout(limits.request_timeout)
        .concurrency_limit_per_connection(limits.concurrency_per_connection)
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)));
    if let Some(age) = limits.max_connection_age {
        builder = builder.max_connection_age(age);
    }
    builder.layer(GrpcTraceLayer::server())
}

/// Binds `addr` (port 0 picks a free port) and returns the bound address with the incoming
/// connection stream for `Router::serve_with_incoming_shutdown`.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(SocketAddr, TcpIncoming)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((local, TcpIncoming::from(listener).with_nodelay(Some(true))))
}

/// Deadlines for an outgoing channel.
#[derive(Clone, Copy, Debug)]
pub struct ChannelTimeouts {
    pub connect: Duration,
    /// Per-call deadline; also sent to the server as `grpc-timeout`.
    pub request: Duration,
}

impl Default for ChannelTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(1),
            request: Duration::from_secs(2),
        }
    }
}

/// A lazily connecting channel to `target` (a `*_URL` value: one URL, a comma-separated list
/// of replicas, or `dns:///name:port`; see [`Target`]), balanced per call over its replicas:
/// the first call connects, so a service can start before its dependencies and reconnects
/// after they restart. Must be called within a Tokio runtime.
pub fn channel(target: &str, timeouts: ChannelTimeouts) -> Result<TracedChannel, InvalidTarget> {
    let target = Target::parse(target).map_err(InvalidTarget)?;
    Ok(channel_to(&target, timeouts, Discovery::system()))
}

/// As [`channel`], for a parsed target resolved with `discovery`.
pub fn channel_to(
    target: &Target,
    timeouts: ChannelTimeouts,
    discovery: Discovery,
) -> TracedChannel {
    let channel = Channel::new(target, timeouts, discovery);
    tower::Layer::layer(&GrpcTraceLayer::client(), channel)
}

/// A `*_URL` value that names no replicas; says why.
#[derive(Debug)]
pub struct InvalidTarget(pub String);

impl std::fmt::Display for InvalidTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidTarget {}

/// Wraps a message in a request that carries `deadline` to the server as `grpc-timeout`.
pub fn request<T>(message: T, deadline: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(deadline);
    request
}

/// The grpc.health.v1 service name that answers SERVING while the process serves, whatever
/// its stores say: for liveness (and startup) probes, so a store outage takes pods out of
/// rotation (readiness, the "" name) without restarting healthy processes.
pub const LIVENESS: &str = "liveness";

/// Runs a readiness probe now and then every `period`, publishing its verdict on the gRPC
/// health service for `S` (and the overall "" service), so orchestrators' grpc.health.v1 probes
/// see the truth from the first call; [`LIVENESS`] is SERVING throughout. Abort the returned
/// handle when the server stops.
pub async fn publish_health<S, P, Fut>(
    reporter: tonic_health::server::HealthReporter,
    period: Duration,
    mut probe: P,
) -> tokio::task::JoinHandle<()>
where
    S: tonic::server::NamedService,
    P: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    reporter
        .set_service_status(LIVENESS, tonic_health::ServingStatus::Serving)
        .await;
    let mut last = probe().await;
    publish::<S>(&reporter, last).await;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(period).await;
            let healthy = probe().await;
            if healthy != last {
                publish::<S>(&reporter, healthy).await;
                last = healthy;
            }
        }
    })
}

async fn publish<S: tonic::server::NamedService>(
    reporter: &tonic_health::server::HealthReporter,
    healthy: bool,
) {
    let status = if healthy {
        tonic_health::ServingStatus::Serving
    } else {
        tonic_health::ServingStatus::NotServing
    };
    reporter.set_service_status(S::NAME, status).await;
    reporter.set_service_status("", status).await;
    if healthy {
        tracing::info!(service = S::NAME, "ready");
    } else {
        tracing::warn!(service = S::NAME, "not ready: dependency probe failed");
    }
}

/// The grpc.reflection.v1 service over the given encoded descriptor sets (plus grpc.health.v1),
/// so tools like grpcurl can call a service without its .proto files.
pub fn reflection(
    descriptor_sets: &[&'static [u8]],
) -> Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::Error,
> {
    let mut builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
    for set in descriptor_sets {
        builder = builder.register_encoded_file_descriptor_set(set);
    }
    builder.build_v1()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        grpc: ServerArgs,
    }

    #[test]
    fn connections_age_out_after_sixty_seconds_unless_set_otherwise_and_zero_means_never() {
        let age = |flags: &[&str]| {
            let args = Args::parse_from(std::iter::once("server").chain(flags.iter().copied()));
            args.grpc.limits().max_connection_age
        };
        assert_eq!(age(&[]), Some(Duration::from_secs(60)));
        assert_eq!(
            age(&["--max-connection-age-secs=300"]),
            Some(Duration::from_secs(300))
        );
        assert_eq!(age(&["--max-connection-age-secs=0"]), None);
    }
}
