//! Process helpers the other modules share, importing none of them: where the repository and
//! its build output are, the cargo to run, finding programs, waiting until something is ready,
//! and stopping children.

use std::{
    future::Future,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::bail;
use tokio::process::Child;

/// The repository root (xtask lives one level below it).
pub fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// The cargo that invoked us, so the same toolchain builds everything.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Cargo's output folder: `CARGO_TARGET_DIR`, else target/ under the root.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// A binary of this workspace's release build.
pub fn release_binary(name: &str) -> PathBuf {
    target_dir().join("release").join(name)
}

/// Where a program is: on PATH, else in the system folders a root shell's PATH may lack.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    const SYSTEM_DIRS: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin";
    which::which_global(name)
        .ok()
        .or_else(|| which::which_in_global(name, Some(SYSTEM_DIRS)).ok()?.next())
}

/// Whether we run as root (the effective user).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Polls `ready` every 100 ms until it says yes, or fails after `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut ready: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if ready().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{what} did not become ready within {limit:?}")
}

/// Stops the children in reverse start order.
pub async fn stop_all(running: &mut [(&'static str, Child)]) {
    for (name, child) in running.iter_mut().rev() {
        terminate(name, child, Duration::from_secs(15)).await;
    }
}

/// SIGTERM, wait up to `grace`, then SIGKILL.
pub async fn terminate(name: &str, child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(_) => eprintln!("xtask: {name} stopped"),
        Err(_) => {
            eprintln!("xtask: {name} did not stop within {grace:?}; killing it");
            let _ = child.kill().await;
        }
    }
}
