//! The gateway: the only public door. HTTP/JSON in, gRPC to the backends out.

pub mod app;
pub mod backends;
pub mod config;
pub mod deadline;
pub mod error;
pub mod extract;
pub mod identity;
pub mod metrics;
pub mod openapi;
pub mod rate_limit;
pub mod read_cache;
pub mod rooms;
pub mod routes;
pub mod server;
pub mod wire;

use std::{future::Future, net::SocketAddr, ops::Deref, sync::Arc};

pub use config::Config;

/// What every handler can reach: one shared allocation, so the per-request clone axum's
/// `State` extractor makes is one reference count, not a copy of every channel and limiter.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub backends: backends::Backends,
    pub identity: identity::Identity,
    pub rate_limits: rate_limit::RateLimits,
    pub rooms: rooms::Rooms,
    pub admin: identity::admin::AdminAccess,
    pub pages: routes::pages::Pages,
    pub dev_sign_in: routes::dev_sign_in::DevSignIn,
    /// Prometheus metrics, and this replica's recent per-route view for the console.
    pub metrics: metrics::GatewayMetrics,
    /// Browsing answers kept for a bounded time.
    pub reads: read_cache::ReadCache,
}

/// Binds the HTTP server and returns its address and the future that serves until `shutdown`.
pub async fn build(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(SocketAddr, impl Future<Output = anyhow::Result<()>>)> {
    Ok(start(config, shutdown).await?.into_parts())
}

/// As [`build`], also saying where the metrics server listens.
pub async fn start(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<kit::metrics::Started<impl Future<Output = anyhow::Result<()>>>> {
    config.validate().map_err(anyhow::Error::msg)?;
    let state = state(&config).await?;
    match config.identity.mode {
        identity::AuthMode::Trusted => {
            tracing::warn!("GATEWAY_AUTH=trusted: the userId in each request is believed")
        }
        identity::AuthMode::Jwt => tracing::info!("GATEWAY_AUTH=jwt: bearer tokens are verified"),
    }
    let housekeeping = tokio::spawn(state.rate_limits.clone().housekeeping());
    let metrics_server = kit::metrics::serve(config.metrics_addr, state.metrics.registry()).await?;
    let metrics_addr = metrics_server.addr();
    let snapshots = tokio::spawn(state.metrics.clone().snapshot_every_period());
    let app = app::router(state, &config);
    let listener = server::bind(config.listen_addr, config.reuse_port)?;
    let addr = listener.local_addr()?;
    let limits = server::Limits::from_config(&config);
    tracing::info!(%addr, %metrics_addr, "gateway listening");
    let serve = async move {
        let served = server::serve(listener, app, limits, shutdown).await;
        housekeeping.abort();
        snapshots.abort();
        metrics_server.stop();
        served
    };
    Ok(kit::metrics::Started {
        addr,
        metrics_addr,
        serve,
    })
}

/// What the handlers reach, built from a validated `config` (tests build a router on it).
pub async fn state(config: &Config) -> anyhow::Result<AppState> {
    let identity = identity::Identity::from_config(&config.identity).await?;
    let dev_sign_in =
        routes::dev_sign_in::DevSignIn::from_config(&config.dev_sign_in, &identity).await?;
    Ok(AppState(Arc::new(Shared {
        backends: backends::Backends::connect(config)?,
        identity,
        pages: routes::pages::Pages::from_config(&config.pages)?,
        dev_sign_in,
        rate_limits: rate_limit::RateLimits::new(&config.rate_limit),
        rooms: rooms::Rooms::default(),
        admin: identity::admin::AdminAccess::from_config(&config.identity),
        metrics: metrics::GatewayMetrics::new(),
        reads: read_cache::ReadCache::from_config(&config.read_cache),
    })))
}
