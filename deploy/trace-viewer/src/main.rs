//! Receives OTLP/gRPC traces in memory and shows them in the Jaeger UI, for one machine.

use std::net::SocketAddr;

use clap::Parser;
use otlp_embedded::{Config, State, TraceServiceImpl, TraceServiceServer, ui_app};

/// In-memory OTLP trace receiver with a web UI.
#[derive(Parser)]
#[command(name = "trace-viewer", version, about)]
struct Args {
    /// OTLP/gRPC address the services export to.
    #[arg(long, env = "TRACE_VIEWER_OTLP_ADDR", default_value = "127.0.0.1:4317")]
    otlp_addr: SocketAddr,
    /// Where the web UI listens.
    #[arg(long, env = "TRACE_VIEWER_UI_ADDR", default_value = "127.0.0.1:16686")]
    ui_addr: SocketAddr,
    /// Most traces kept (oldest evicted first).
    #[arg(long, env = "TRACE_VIEWER_MAX_TRACES", default_value_t = 10_000)]
    max_traces: u32,
    /// Memory budget for kept traces, in MiB.
    #[arg(long, env = "TRACE_VIEWER_MAX_MIB", default_value_t = 256)]
    max_mib: usize,
}

/// Ctrl-C or SIGTERM: what `kit::shutdown::signal` does for the services. Kept here rather
/// than shared: depending on kit would add 28 crates to this workspace (125 -> 153: the
/// OpenTelemetry SDK and OTLP exporter, tracing-subscriber with regex, tonic-health and
/// -reflection) and tie its lockfile to the main workspace's.
async fn shutdown() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = async {
            match terminate.as_mut() {
                Some(stream) => { stream.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {},
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let state = State::new(Config {
        max_length: args.max_traces,
        max_memory_usage: args.max_mib << 20,
    });
    let ui = tokio::net::TcpListener::bind(args.ui_addr).await?;
    let ui_server = axum::serve(ui, ui_app(state.clone(), "/")).with_graceful_shutdown(shutdown());
    let otlp = tonic::transport::Server::builder()
        .add_service(
            TraceServiceServer::new(TraceServiceImpl::new(state))
                .max_decoding_message_size(64 << 20),
        )
        .serve_with_shutdown(args.otlp_addr, shutdown());
    eprintln!(
        "trace-viewer: OTLP on {}, UI on http://{}",
        args.otlp_addr, args.ui_addr
    );
    let (ui_result, otlp_result) = tokio::join!(ui_server, otlp);
    ui_result?;
    otlp_result?;
    Ok(())
}
