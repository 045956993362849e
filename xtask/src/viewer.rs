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

/// Where `cargo xtask up` sends the services' spans.
#[derive(Debug, PartialEq, Eq)]
pub enum Traces {
    /// Its own viewer, started for the run.
    Viewer,
    /// The collector the user's OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT names: the services
    /// inherit it, and no viewer is started.
    Collector(String),
    /// Nowhere (`--no-traces`, which also overrides an inherited endpoint).
    Off,
}

impl Traces {
    /// The choice for `--no-traces` and the launcher's own environment.
    pub fn from_env(no_traces: bool) -> Self {
        let endpoint = [
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()));
        Self::choose(no_traces, endpoint)
    }

    fn choose(no_traces: bool, endpoint: Option<String>) -> Self {
        match (no_traces, endpoint) {
            (true, _) => Self::Off,
            (false, Some(endpoint)) => Self::Collector(endpoint),
            (false, None) => Self::Viewer,
        }
    }
}

/// What the services need to export to the viewer.
pub fn service_env(otlp: SocketAddr) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}")),
        // Show traces within a second of the request, not after the default five.
        ("OTEL_BSP_SCHEDULE_DELAY", "1000".into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::Traces;

    #[test]
    fn a_users_collector_wins_over_the_viewer_and_no_traces_over_both() {
        let theirs = Some("http://collector:4317".to_owned());
        assert_eq!(
            Traces::choose(false, theirs.clone()),
            Traces::Collector("http://collector:4317".into())
        );
        assert_eq!(Traces::choose(false, None), Traces::Viewer);
        assert_eq!(Traces::choose(true, theirs), Traces::Off);
        assert_eq!(Traces::choose(true, None), Traces::Off);
    }
}
