//! One connection: hyper serves it, a watchdog beside it closes it when a deadline passes.
//!
//! The watchdog knows three phases, kept in a few atomics shared with the connection's socket
//! wrapper and its requests:
//!
//! - **reading a request head** — from the accept, or (HTTP/1) from the first byte after an
//!   idle spell, until the request is dispatched: at most `header_read_timeout`;
//! - **busy** — requests in flight: no connection deadline here (the body layer bounds the
//!   body read, the request timeout the handler);
//! - **idle** — nothing in flight: at most `idle_timeout` before the next request starts.
//!
//! This is Go's `ReadHeaderTimeout`/`IdleTimeout` split. hyper's own
//! `http1::Builder::header_read_timeout` is not used: it starts its timer as soon as a
//! kept-alive connection goes idle (`proto/h1/conn.rs`: `State::idle` sets `notify_read`, and
//! `poll_read_head` arms the timer before any byte arrives), so it would cut every idle
//! connection at the header deadline — 5 s instead of the 60 s a proxy in front expects.
//!
//! The watchdog never needs waking when a phase changes: it re-checks at the phase's deadline
//! and, at the latest, every `header_read_timeout` (the soonest a newly started head could fall
//! due), so a deadline is enforced on time at the cost of one wake-up per connection per
//! `header_read_timeout`.

use std::{
    convert::Infallible,
    future::Future,
    io,
    net::SocketAddr,
    pin::{Pin, pin},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{Router, body::Body, extract::ConnectInfo, response::Response};
use http::{Request, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    sync::watch,
    time::{Instant, sleep_until},
};
use tower::ServiceExt;

use super::Limits;

/// What every connection task shares.
pub(super) struct Shared {
    pub router: Router,
    pub builder: auto::Builder<TokioExecutor>,
    pub limits: Limits,
}

/// Serves one accepted connection until it ends, a deadline passes, or the server shuts down.
pub(super) async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    mut pressure: watch::Receiver<()>,
) {
    let limits = shared.limits;
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(TrackedIo {
        inner: stream,
        activity: activity.clone(),
    });
    let service = ConnService {
        router: shared.router.clone(),
        peer,
        activity: activity.clone(),
    };
    let mut conn = pin!(shared.builder.serve_connection(io, service));

    // Once a graceful close has begun: when the connection is dropped regardless.
    let mut close_by: Option<Instant> = None;
    let mut draining = false;
    let mut pressure_open = true;
    let mut check = pin!(sleep_until(activity.next_check(
        &limits,
        Instant::now(),
        None
    )));
    loop {
        // `draining` also covers a shutdown signalled before this connection was accepted.
        let event = if !draining && *shutdown.borrow() {
            Event::Shutdown
        } else {
            tokio::select! {
                result = conn.as_mut() => Event::Ended(result),
                () = &mut check => Event::Check,
                // An error means the server future is gone: drain all the same.
                _ = shutdown.changed(), if !draining => Event::Shutdown,
                changed = pressure.changed(), if pressure_open => Event::Pressure(changed.is_ok()),
            }
        };
        let now = Instant::now();
        match event {
            Event::Ended(result) => {
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
                return;
            }
            Event::Check => {
                if close_by.is_some_and(|by| now >= by) {
                    tracing::debug!(%peer, "connection still open after its graceful close; dropped");
                    return;
                }
                match activity.phase(&limits) {
                    Phase::ReadingHead { deadline } if now >= deadline => {
                        // Nothing was dispatched, so there is nothing to answer: just close.
                        tracing::debug!(%peer, "request head not received in time; connection closed");
                        return;
                    }
                    Phase::Idle { deadline } if now >= deadline => {
                        tracing::trace!(%peer, "idle timeout; closing the connection");
                        if begin_close(&mut close_by, now + limits.header_read_timeout) {
                            conn.as_mut().graceful_shutdown();
                        }
                    }
                    _ => {}
                }
            }
            Event::Shutdown => {
                draining = true;
                if begin_close(&mut close_by, now + limits.drain_timeout) {
                    conn.as_mut().graceful_shutdown();
                }
            }
            Event::Pressure(open) => {
                pressure_open = open;
                if open && matches!(activity.phase(&limits), Phase::Idle { .. }) {
                    // A connection waits at the cap: an idle keep-alive one gives up its slot.
                    tracing::debug!(%peer, "connection cap reached; closing an idle connection");
                    if begin_close(&mut close_by, now + limits.header_read_timeout) {
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        }
        check
            .as_mut()
            .reset(activity.next_check(&limits, now, close_by));
    }
}

enum Event {
    Ended(Result<(), Box<dyn std::error::Error + Send + Sync>>),
    Check,
    Shutdown,
    Pressure(bool),
}

/// Whether to start hyper's graceful close now (HTTP/1: close once the current response is
/// written; HTTP/2: GOAWAY, then close when the streams are done): only the first time, which
/// also sets `by`, when the connection is dropped regardless.
fn begin_close(close_by: &mut Option<Instant>, by: Instant) -> bool {
    if close_by.is_some() {
        return false;
    }
    *close_by = Some(by);
    true
}

const NONE: u64 = u64::MAX;

/// The connection's phase, shared between the watchdog, the socket wrapper and the requests.
struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    /// When the current request head began (ms since `start`), or `NONE`.
    head_since: AtomicU64,
    /// When the last request finished (ms since `start`).
    idle_since: AtomicU64,
    /// HTTP/2: frames (pings, settings, window updates) arrive while idle, so bytes do not mean
    /// a request head has begun.
    multiplexed: AtomicBool,
}

enum Phase {
    ReadingHead { deadline: Instant },
    Busy,
    Idle { deadline: Instant },
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            // A fresh connection is reading its first request head from the accept on.
            head_since: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            multiplexed: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    /// Bytes arrived: on an idle HTTP/1 connection they start the next request head.
    fn bytes_received(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && !self.multiplexed.load(Ordering::Relaxed)
            && self.head_since.load(Ordering::Relaxed) == NONE
        {
            let _ = self.head_since.compare_exchange(
                NONE,
                self.now_ms(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    fn request_started(self: &Arc<Self>, version: Version) -> InFlight {
        if version == Version::HTTP_2 {
            self.multiplexed.store(true, Ordering::Relaxed);
        }
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(NONE, Ordering::Relaxed);
        InFlight(self.clone())
    }

    fn phase(&self, limits: &Limits) -> Phase {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Phase::Busy;
        }
        match self.head_since.load(Ordering::Relaxed) {
            NONE => Phase::Idle {
                deadline: self.at(self.idle_since.load(Ordering::Relaxed)) + limits.idle_timeout,
            },
            since => Phase::ReadingHead {
                deadline: self.at(since) + limits.header_read_timeout,
            },
        }
    }

    /// When the watchdog looks next: the phase's deadline, but no later than one header
    /// timeout from now (a head starting now is due then), nor than `close_by`.
    fn next_check(&self, limits: &Limits, now: Instant, close_by: Option<Instant>) -> Instant {
        let recheck = now + limits.header_read_timeout;
        let next = match self.phase(limits) {
            Phase::ReadingHead { deadline } | Phase::Idle { deadline } => deadline.min(recheck),
            Phase::Busy => recheck,
        };
        close_by.map_or(next, |by| next.min(by))
    }
}

/// A request in flight; dropped when its response body has been handed to hyper (or the
/// request was abandoned).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        activity
            .idle_since
            .store(activity.now_ms(), Ordering::Relaxed);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The socket, reporting received bytes to the watchdog.
struct TrackedIo {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.bytes_received();
        }
        polled
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The router as hyper sees it: the peer address goes into every request as
/// `ConnectInfo<SocketAddr>`, and each request counts as in flight until its response body is
/// handed over.
struct ConnService {
    router: Router,
    peer: SocketAddr,
    activity: Arc<Activity>,
}

type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let in_flight = self.activity.request_started(request.version());
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let router = self.router.clone();
        Box::pin(async move {
            let response = router.oneshot(request).await?;
            Ok(response.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    // Owned by the body: the request ends when hyper drops it.
                    let _ = &in_flight;
                    frame
                }))
            }))
        })
    }
}
