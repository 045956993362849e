//! The HTTP server: a door slow clients cannot jam.
//!
//! Our own accept loop on hyper-util (HTTP/1.1, and HTTP/2 with prior knowledge), in place of
//! `axum::serve`, which has no header-read timeout, no idle timeout and no connection cap:
//!
//! - **Header-read timeout** (`GATEWAY_HEADER_READ_TIMEOUT_MS`): a request head must arrive
//!   within it, counted from the accept or from the first byte of the next request on a
//!   kept-alive connection; past it the connection is closed.
//! - **Idle timeout** (`GATEWAY_IDLE_TIMEOUT_MS`): how long a kept-alive connection may wait
//!   for its next request. Longer than the header timeout on purpose: a proxy in front keeps
//!   its upstream connections for about a minute, and closing them earlier races its requests.
//! - **Connection cap** (`GATEWAY_MAX_CONNECTIONS`): a semaphore, one slot per connection. At
//!   the cap the loop holds the connection it has just accepted until a slot frees and accepts
//!   nothing more, so later connections wait in the kernel's accept backlog ([`bind`] asks for
//!   [`BACKLOG`]; once that is full the kernel drops SYNs and clients retry with backoff).
//!   Waiting there costs no descriptor and no CPU, a short burst past the cap is served late
//!   rather than refused, and the cap is a real bound on descriptors (plus the one held).
//!   Accepting only to close again would need a descriptor per refusal and spin the 2 cores on
//!   a flood; refused clients would have to retry at once. While a connection waits the loop
//!   asks idle keep-alive connections to close (at most every [`PRESSURE_INTERVAL`]), so the
//!   only way to hold a slot is to be reading a head (bounded by the header timeout), a body
//!   (the body timeout) or a request (the request timeout).
//! - **Graceful shutdown**: when `shutdown` completes the listener closes, idle connections
//!   close at once, in-flight requests finish (HTTP/1 answers them with `Connection: close`,
//!   HTTP/2 sends GOAWAY), then the future resolves. A connection that has not closed after
//!   [`Limits::drain_timeout`] — longer than any request may legitimately take — is dropped.
//! - The peer address is in every request's extensions as `ConnectInfo<SocketAddr>`.
//!
//! Request bodies are read by [`body::BufferBodyLayer`], before the request takes an in-flight
//! slot.

pub mod body;
mod connection;

use std::{future::Future, net::SocketAddr, pin::pin, sync::Arc, time::Duration};

use axum::Router;
use hyper_util::{rt::TokioExecutor, server::conn::auto};
use tokio::{
    net::{TcpListener, TcpSocket},
    sync::{Semaphore, watch},
    time::Instant,
};

use crate::config::Config;

/// At the cap, how often idle connections are asked to give up their slot.
pub const PRESSURE_INTERVAL: Duration = Duration::from_millis(250);

/// The listen backlog: where connections past the cap wait. Linux clamps it to
/// `net.core.somaxconn` (4096 by default since 5.4); std's and tokio's `bind` ask for 128.
pub const BACKLOG: u32 = 4096;

/// Largest read buffer of an HTTP/1 connection, and so the largest request head.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Descriptors the process needs besides client connections (listener, backend channels,
/// stdio, telemetry), for the start-up check against `RLIMIT_NOFILE`.
const DESCRIPTOR_HEADROOM: u64 = 64;

/// Connection-level limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// After shutdown begins, how long a connection may take to finish before it is dropped.
    pub drain_timeout: Duration,
}

impl Limits {
    pub fn from_config(config: &Config) -> Self {
        let header_read_timeout = Duration::from_millis(config.header_read_timeout_ms);
        Self {
            header_read_timeout,
            idle_timeout: Duration::from_millis(config.idle_timeout_ms),
            max_connections: config.max_connections,
            // A request that began just before shutdown: its head, its body, its handler.
            drain_timeout: header_read_timeout
                + Duration::from_millis(config.body_read_timeout_ms)
                + config.request_timeout(),
        }
    }
}

/// Binds a listener with a [`BACKLOG`]-deep accept queue; with `reuse_port`, other processes
/// binding the same address with it share the port (SO_REUSEPORT: the kernel spreads new
/// connections over the listeners).
pub fn bind(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As std and tokio do: a restarted gateway can bind while old connections sit in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Serves `router` on `listener` until `shutdown` completes and every connection has closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        limits.max_connections > 0 && limits.max_connections <= Semaphore::MAX_PERMITS,
        "max_connections must be between 1 and {}",
        Semaphore::MAX_PERMITS
    );
    warn_if_above_open_file_limit(limits.max_connections);

    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The watchdog in `connection` does this, without cutting idle keep-alive connections at
    // the header deadline as hyper's timer would.
    builder.http1().header_read_timeout(None);
    // A request head is a few hundred bytes; hyper's default buffer lets one connection hold
    // ~400 KiB, which at the connection cap is gigabytes.
    builder.http1().max_buf_size(MAX_HEAD_BYTES);
    let shared = Arc::new(connection::Shared {
        router,
        builder,
        limits,
    });
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (shutdown_tx, _) = watch::channel(false);
    let (pressure_tx, _) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    let mut last_pressure: Option<Instant> = None;
    let mut last_warning: Option<Instant> = None;

    'accept: loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    if !is_connection_error(&error) {
                        // EMFILE and friends: give the process a moment to close descriptors.
                        tracing::error!(%error, "accept failed");
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_millis(100)) => {}
                            () = &mut shutdown => break 'accept,
                        }
                    }
                    continue;
                }
            },
            () = &mut shutdown => break 'accept,
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            // At the cap. This connection waits here (the one descriptor past the cap) and the
            // loop accepts nothing more, so later ones wait in the kernel's backlog. Idle
            // connections are asked to make room (at most every PRESSURE_INTERVAL: each ask
            // wakes every connection).
            Err(_) => loop {
                if last_warning.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                    last_warning = Some(Instant::now());
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "connection cap reached; new connections wait in the accept backlog"
                    );
                }
                if last_pressure.is_none_or(|at| at.elapsed() >= PRESSURE_INTERVAL) {
                    last_pressure = Some(Instant::now());
                    pressure_tx.send_replace(());
                }
                tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => break slot,
                        Err(_) => break 'accept,
                    },
                    () = tokio::time::sleep(PRESSURE_INTERVAL) => {}
                    () = &mut shutdown => break 'accept,
                }
            },
        };
        let shared = shared.clone();
        let shutdown_rx = shutdown_tx.subscribe();
        let pressure_rx = pressure_tx.subscribe();
        tokio::spawn(async move {
            connection::run(stream, peer, shared, shutdown_rx, pressure_rx).await;
            drop(slot);
        });
    }

    drop(listener);
    let open = shutdown_tx.receiver_count();
    tracing::info!(connections = open, "shutting down: draining connections");
    shutdown_tx.send_replace(true);
    // Each connection drops itself past its drain deadline; the margin covers the last check.
    let deadline = limits.drain_timeout + Duration::from_secs(1);
    if tokio::time::timeout(deadline, shutdown_tx.closed())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = shutdown_tx.receiver_count(),
            "connections still open after the drain deadline"
        );
    }
    Ok(())
}

fn is_connection_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}

/// Every connection is a descriptor: a cap above `RLIMIT_NOFILE` is never reached, `accept`
/// fails with EMFILE first.
fn warn_if_above_open_file_limit(max_connections: usize) {
    let Some(limit) = open_file_limit() else {
        return;
    };
    let wanted = u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_add(DESCRIPTOR_HEADROOM);
    if wanted > limit {
        tracing::warn!(
            max_connections,
            open_file_limit = limit,
            "GATEWAY_MAX_CONNECTIONS is above what the open-file limit (ulimit -n) allows; \
             accept will fail with EMFILE before the cap is reached"
        );
    }
}

/// The soft `RLIMIT_NOFILE`, from `/proc/self/limits` (Linux; `None` elsewhere or unlimited).
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_file_limit(&limits)
}

fn parse_open_file_limit(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_open_file_limit_is_read_from_proc_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            20000                524288               files     \n";
        assert_eq!(parse_open_file_limit(limits), Some(20000));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_open_file_limit(unlimited), None);
    }
}
