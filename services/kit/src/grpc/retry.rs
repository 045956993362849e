//! Calls sent again on another replica: which failures allow it, and the loop that does it
//! within the caller's deadline.
//!
//! A failed call either never reached a server (the connection was refused, or the server
//! turned the stream away: REFUSED_STREAM, or a GOAWAY from a server closing the connection
//! before it took the stream), was cut off on its way (the connection broke: the server may
//! or may not have done the work), or was answered (a status from the server, or our own
//! deadline). The first is sent again whatever the call — as gRPC's transparent retries do:
//! nothing reached a server, so nothing can happen twice; the second only when the call is
//! idempotent; the third never. The balanced channel marks a replica that failed at the
//! transport down, so the next attempt goes to another one.

use std::{future::Future, time::Duration};

use tokio::time::Instant;

/// Attempts per call at most: the first and two more (one replica dying mid-call, then its
/// reconnection refused, still leaves one attempt for a live replica).
pub const MAX_ATTEMPTS: u32 = 3;

/// How far a failed call got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// It never reached a server: sending it again cannot do anything twice.
    NotSent,
    /// The connection broke while it was in flight: the server may have done the work.
    Interrupted,
    /// A server answered it, or its deadline passed.
    Answered,
}

impl Reach {
    /// Whether `status` may be sent again: always when it was not sent, when it was cut off
    /// only if the call is `idempotent`.
    pub fn allows_retry(self, idempotent: bool) -> bool {
        match self {
            Self::NotSent => true,
            Self::Interrupted => idempotent,
            Self::Answered => false,
        }
    }
}

/// How far the call that failed with `status` got, from the transport error tonic keeps as
/// the status's source (a status a server sent has none).
pub fn reach(status: &tonic::Status) -> Reach {
    let Some(source) = std::error::Error::source(status) else {
        return Reach::Answered;
    };
    of_error(source)
}

/// As [`reach`], for the transport error itself.
pub fn of_error(error: &(dyn std::error::Error + 'static)) -> Reach {
    let mut transport = false;
    let mut next = Some(error);
    while let Some(error) = next {
        if error.is::<tonic::TimeoutExpired>() {
            return Reach::Answered;
        }
        if error.is::<tonic::ConnectError>() {
            return Reach::NotSent;
        }
        if let Some(h2) = error.downcast_ref::<h2::Error>() {
            // A stream the server refused, or one above the last it took before going away.
            if h2.reason() == Some(h2::Reason::REFUSED_STREAM)
                || (h2.is_go_away() && h2.is_remote())
            {
                return Reach::NotSent;
            }
            transport = true;
        }
        if let Some(hyper) = error.downcast_ref::<hyper::Error>() {
            // Canceled: hyper dropped the request before writing it (the connection was not
            // ready, or closed with the request still queued).
            if hyper.is_canceled() {
                return Reach::NotSent;
            }
            transport = true;
        }
        if error.is::<std::io::Error>() || error.is::<tonic::transport::Error>() {
            transport = true;
        }
        next = error.source();
    }
    if transport {
        Reach::Interrupted
    } else {
        Reach::Answered
    }
}

/// Runs `attempt` (given the time left) until it succeeds, fails in a way that may not be
/// retried (see [`Reach::allows_retry`]), [`MAX_ATTEMPTS`] have failed, or `deadline` has
/// passed. Each attempt should carry the time it is given as its own deadline.
pub async fn retrying<T, F, Fut>(
    idempotent: bool,
    deadline: Duration,
    mut attempt: F,
) -> Result<T, tonic::Status>
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let until = Instant::now() + deadline;
    let mut attempts = 1;
    loop {
        let left = until
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        match attempt(left).await {
            Err(status)
                if attempts < MAX_ATTEMPTS
                    && Instant::now() < until
                    && reach(&status).allows_retry(idempotent) =>
            {
                tracing::debug!(attempt = attempts, code = ?status.code(), message = status.message(), "call failed on its way; sending it again");
                attempts += 1;
            }
            outcome => return outcome,
        }
    }
}
