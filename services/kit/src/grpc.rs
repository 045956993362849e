//! gRPC server and channel set-up shared by every service, with deadlines everywhere:
//! a server-side request timeout, client connect and per-call timeouts, HTTP/2 keep-alives
//! so dead peers are noticed.

use std::{future::Future, net::SocketAddr, time::Duration};

use tokio::net::TcpListener;
use tower::layer::util::{Identity, Stack};

use crate::trace_context::{GrpcTrace, GrpcTraceLayer};
use tonic::transport::{Channel, Endpoint, Server, server::TcpIncoming};

/// Limits applied to every gRPC server.
#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    /// Longest a single call may run before the server answers DEADLINE_EXCEEDED.
    pub request_timeout: Duration,
    /// Concurrent calls per connection before the server pushes back.
    pub concurrency_per_connection: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(5),
            concurrency_per_connection: 1024,
        }
    }
}

/// A server with every call traced (continuing the caller's trace context).
pub type TracedServer = Server<Stack<GrpcTraceLayer, Identity>>;

/// A channel whose every call is traced and carries the current trace context.
pub type TracedChannel = GrpcTrace<Channel>;

/// A server builder with the shared timeouts, transport settings and call tracing.
pub fn server(limits: ServerLimits) -> TracedServer {
    Server::builder()
        .timeout(limits.request_timeout)
        .concurrency_limit_per_connection(limits.concurrency_per_connection)
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .layer(GrpcTraceLayer::server())
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

/// A lazily connecting channel to `url` (`http://host:port`): the first call connects, so a
/// service can start before its dependencies and reconnects after they restart.
pub fn channel(
    url: &str,
    timeouts: ChannelTimeouts,
) -> Result<TracedChannel, tonic::transport::Error> {
    let channel = Endpoint::from_shared(url.to_owned())?
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.request)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true)
        .connect_lazy();
    Ok(tower::Layer::layer(&GrpcTraceLayer::client(), channel))
}

/// Wraps a message in a request that carries `deadline` to the server as `grpc-timeout`.
pub fn request<T>(message: T, deadline: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(deadline);
    request
}

/// Runs a readiness probe now and then every `period`, publishing its verdict on the gRPC
/// health service for `S` (and the overall "" service), so orchestrators' grpc.health.v1 probes
/// see the truth from the first call. Abort the returned handle when the server stops.
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
