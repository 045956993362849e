//! Each request's span, and its answer recorded. The trace's sampling decision is made here,
//! once, at the root: the caller's `traceparent` (sampled flag and all) is taken up only from
//! a trusted network (`GATEWAY_TRACE_TRUSTED_NETWORKS`), so a client cannot raise the sampling
//! rate; an unsampled request gets no span anywhere. Spans are named by route template
//! (`POST /api/reserve`), never by raw path. The answer's status goes on the span and into
//! the failure log (shed, rate-limited, 503 and 504 answers only counted).

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use axum::{
    body::Body,
    extract::{ConnectInfo, MatchedPath},
    http::Request,
    response::Response,
};
use kit::trace::{Kind, Span};

use super::failure_log::{FailureLog, Logged};

#[derive(Clone)]
pub struct RequestSpanLayer {
    trusted_tracers: Arc<[ipnet::IpNet]>,
    failures: FailureLog,
}

impl RequestSpanLayer {
    pub fn new(trusted_tracers: Arc<[ipnet::IpNet]>, failures: FailureLog) -> Self {
        Self {
            trusted_tracers,
            failures,
        }
    }
}

impl<S> tower::Layer<S> for RequestSpanLayer {
    type Service = RequestSpan<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestSpan {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RequestSpan<S> {
    inner: S,
    layer: RequestSpanLayer,
}

impl<S> tower::Service<Request<Body>> for RequestSpan<S>
where
    S: tower::Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let started = Instant::now();
        let trusted = trusts_trace_context(&request, &self.layer.trusted_tracers);
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str);
        let mut span = kit::trace::decide(trusted.then(|| request.headers()))
            .root(Kind::Server, || format!("{} {route}", request.method()));
        if span.is_recording() {
            span.set("http.route", route.to_owned());
        }
        // The service that was polled ready is the one to call; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let call = span.in_scope(|| inner.call(request));
        let failures = self.layer.failures.clone();
        Box::pin(async move {
            let result = span.scope(call).await;
            if let Ok(response) = &result {
                record(&mut span, &failures, response, started);
            }
            result
        })
    }
}

/// Whether the request comes from a network whose trace context (sampled flag included) the
/// gateway takes up; anyone else's is ignored.
fn trusts_trace_context<B>(request: &Request<B>, trusted_tracers: &[ipnet::IpNet]) -> bool {
    if trusted_tracers.is_empty() {
        return false;
    }
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|info| trusted_tracers.iter().any(|net| net.contains(&info.0.ip())))
}

/// The status on the span (server errors mark it failed) and in the failure log: shed,
/// rate-limited, 503 and 504 answers only counted, other server errors logged singly up to a
/// few an interval.
fn record(span: &mut Span, failures: &FailureLog, response: &Response, started: Instant) {
    let status = response.status();
    span.set("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.fail(status.canonical_reason().unwrap_or("server error"));
    }
    let shed = response
        .extensions()
        .get::<crate::metrics::Shed>()
        .is_some();
    if failures.record(status, shed) == Logged::Singly {
        let latency = started.elapsed();
        tracing::error!(
            status = status.as_u16(),
            latency_ms = latency.as_secs_f64() * 1000.0,
            trace_id = span.context().map(|c| format!("{:032x}", c.trace_id)),
            "request failed"
        );
    }
}
