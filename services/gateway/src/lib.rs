//! The gateway: the only public door. HTTP/JSON in, gRPC to the backends out.

pub mod app;
pub mod backends;
pub mod config;
pub mod error;
pub mod extract;
pub mod routes;

use std::{future::Future, net::SocketAddr};

pub use config::Config;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub backends: backends::Backends,
}

/// Binds the HTTP server and returns its address and the future that serves until `shutdown`.
pub async fn build(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(SocketAddr, impl Future<Output = anyhow::Result<()>>)> {
    config.validate().map_err(anyhow::Error::msg)?;
    let state = AppState {
        backends: backends::Backends::connect(&config)?,
    };
    let app = app::router(state, &config);
    let listener = tokio::net::TcpListener::bind(config.listen_addr).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "gateway listening");
    let serve = async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(anyhow::Error::from)
    };
    Ok((addr, serve))
}
