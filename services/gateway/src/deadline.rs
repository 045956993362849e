//! One deadline per request, shared by every backend call it makes: a layer sets it when the
//! request starts, and each gRPC call gets whichever is sooner — its own timeout or what is
//! left of the request's — so a request's calls in series (validate, pay) always answer
//! before the whole-request timeout cuts in. A payment that committed is never answered 504
//! by our own timeout.

use std::time::{Duration, Instant};

use axum::{extract::Request, middleware::Next, response::Response};

tokio::task_local! {
    static REQUEST_DEADLINE: Instant;
}

/// Time kept back from the request's deadline to turn a backend's answer into a response.
const ANSWER_MARGIN: Duration = Duration::from_millis(100);

/// The layer: runs the request with its deadline set.
pub async fn scope(timeout: Duration, request: Request, next: Next) -> Response {
    let margin = ANSWER_MARGIN.min(timeout / 10);
    let deadline = Instant::now() + timeout.saturating_sub(margin);
    REQUEST_DEADLINE.scope(deadline, next.run(request)).await
}

/// `call_timeout`, shortened to what is left of the current request's deadline (if any).
pub fn clamp(call_timeout: Duration) -> Duration {
    REQUEST_DEADLINE
        .try_with(|deadline| deadline.saturating_duration_since(Instant::now()))
        .map_or(call_timeout, |left| {
            call_timeout.min(left).max(Duration::from_millis(1))
        })
}
