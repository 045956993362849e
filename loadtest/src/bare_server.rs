//! The bare axum handler `limits` measures: the most an HTTP server can answer on this machine,
//! with nothing behind it.

use std::net::SocketAddr;

use axum::{Router, routing::get};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
}

pub async fn serve(args: Args) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    // The parent reads this line to learn the port.
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app()).await?;
    Ok(())
}

/// One route answering `ok`: nothing behind it.
pub fn app() -> Router {
    Router::new().route("/", get(|| async { "ok" }))
}
