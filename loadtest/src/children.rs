//! This binary's server subcommands (`bare-server`, `bare-relay`, `bare-grpc`) run as child
//! processes of a scenario, so their CPU is their own: started, and the address they bound read
//! from their first line.

use std::{net::SocketAddr, process::Stdio, time::Duration};

use anyhow::Context;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// How long a child has to print the address it bound.
const START: Duration = Duration::from_secs(10);

/// A child server: killed when dropped.
pub struct Server {
    _child: Child,
    pub addr: SocketAddr,
    pub pid: u32,
}

/// How many Tokio workers a child runs.
#[derive(Clone, Copy, Debug)]
pub enum Workers {
    /// Tokio's default (one per core): a machine's limit.
    PerCore,
    /// One, unless `TOKIO_WORKER_THREADS` is set: as `cargo xtask up` runs the services.
    AsTheServices,
}

/// Runs this binary with `args` (a server subcommand that prints `listening on ADDR` first)
/// and waits for its address.
pub async fn spawn(args: &[&str], workers: Workers) -> anyhow::Result<Server> {
    let mut command = Command::new(std::env::current_exe()?);
    command.args(args).stdout(Stdio::piped()).kill_on_drop(true);
    if matches!(workers, Workers::AsTheServices)
        && std::env::var_os("TOKIO_WORKER_THREADS").is_none()
    {
        command.env("TOKIO_WORKER_THREADS", "1");
    }
    let mut child = command.spawn()?;
    let what = args.first().copied().unwrap_or("child");
    let pid = child
        .id()
        .with_context(|| format!("{what} exited at once"))?;
    let stdout = child
        .stdout
        .take()
        .with_context(|| format!("{what} has no stdout"))?;
    let mut line = String::new();
    tokio::time::timeout(START, BufReader::new(stdout).read_line(&mut line))
        .await
        .with_context(|| format!("{what} did not start within {START:?}"))??;
    let addr = line
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .parse()
        .with_context(|| format!("{what} said {line:?}"))?;
    Ok(Server {
        _child: child,
        addr,
        pid,
    })
}
