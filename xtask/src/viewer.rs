//! The local trace viewer (deploy/trace-viewer): built with a vendored protoc, started by
//! `cargo xtask up`, and the address every service exports its spans to.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use crate::process;

/// Builds the viewer in release; returns its binary.
pub async fn build() -> anyhow::Result<PathBuf> {
    cargo(&["build", "--release"]).await?;
    Ok(process::release_binary("trace-viewer"))
}

/// Type-checks the viewer against its lockfile (CI: `up` must not rot unnoticed).
pub async fn check() -> anyhow::Result<()> {
    cargo(&["check", "--locked"]).await
}

/// Runs cargo on the viewer's own workspace with a vendored protoc and the shared target dir.
async fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let protoc =
        protoc_bin_vendored::protoc_bin_path().context("no vendored protoc for this platform")?;
    let status = Command::new(process::cargo())
        .current_dir(process::root())
        .args(args)
        .args([
            "--manifest-path",
            "deploy/trace-viewer/Cargo.toml",
            "--target-dir",
        ])
        .arg(process::target_dir())
        .env("PROTOC", protoc)
        .status()
        .await?;
    if !status.success() {
        bail!("cargo {} on the trace viewer failed", args.join(" "));
    }
    Ok(())
}

/// Starts the viewer: OTLP/gRPC on `otlp`, web UI on `ui`.
pub fn start(binary: &Path, otlp: SocketAddr, ui: SocketAddr) -> anyhow::Result<Child> {
    Command::new(binary)
        .args([
            "--otlp-addr",
            &otlp.to_string(),
            "--ui-addr",
            &ui.to_string(),
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting the trace viewer")
}

/// What the services need to export to the viewer.
pub fn service_env(otlp: SocketAddr) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}")),
        // Show traces within a second of the request, not after the default five.
        ("OTEL_BSP_SCHEDULE_DELAY", "1000".into()),
    ]
}
