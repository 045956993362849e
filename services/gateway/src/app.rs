//! The router and its middleware: request tracing, a deadline on every request, load shedding
//! past the adaptive in-flight limit ([`overload`]), failures logged in aggregate
//! ([`failure_log`]), JSON for every failure (including panics and unknown routes).

pub mod failure_log;
pub mod overload;

use std::{any::Any, net::SocketAddr, sync::Arc};

use axum::{
    BoxError, Router,
    body::Body,
    error_handling::HandleErrorLayer,
    extract::{ConnectInfo, DefaultBodyLimit, MatchedPath},
    http::{Request, StatusCode},
    response::{IntoResponse, Response},
};
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    trace::{OnResponse, TraceLayer},
};

use crate::{AppState, config::Config, error::ApiError, openapi};

pub fn router(state: AppState, config: &Config) -> Router {
    let trusted_tracers: Arc<[ipnet::IpNet]> = config.tracing.trace_trusted_networks.clone().into();
    let request_timeout = config.request_timeout();
    let failures = failure_log::FailureLog::default();
    failures.summarise_every(
        config.failure_log_interval(),
        state.metrics.concurrency_limit(),
    );
    // One limit for every route: Router::layer clones the layer's shared state into each.
    let in_flight_limit =
        overload::AdaptiveLimitLayer::new(config.in_flight_limit(), state.metrics.limiter_gauges());
    // The API's routes are registered with their document entries (openapi::api); the
    // interactive reference is outside the document (openapi::UNDOCUMENTED).
    Router::new()
        .merge(openapi::api())
        .merge(openapi::docs::routes())
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "method not allowed on this route",
            )
        })
        .with_state(state.clone())
        .layer(axum::middleware::from_fn_with_state(
            RequestGate {
                identity: state.identity.clone(),
                rate_limits: state.rate_limits.clone(),
                timeout: request_timeout,
            },
            gate,
        ))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(
            ServiceBuilder::new()
                .layer(CatchPanicLayer::custom(panic_response))
                // The trace's sampling decision, once, before any span (kit::sampling).
                .layer(kit::sampling::RootLayer::new(
                    move |request: &Request<Body>| trusts_trace_context(request, &trusted_tracers),
                ))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(move |request: &Request<Body>| http_span(request))
                        .on_response(RecordStatus { failures })
                        // Not a line per 5xx (tower-http's default, at ERROR): RecordStatus
                        // logs them, shed and backend-down ones only in aggregate.
                        .on_failure(()),
                )
                // Outside the in-flight limit: bodies are read before a request takes a slot.
                .layer(crate::server::body::BufferBodyLayer::from_config(config))
                .layer(HandleErrorLayer::new(middleware_error))
                // Past the limit a request is refused at once (Overloaded), never queued.
                .layer(in_flight_limit)
                .timeout(config.request_timeout()),
        )
        // Outermost: every answer counts, shed and timed-out ones included.
        .layer(state.metrics.layer())
}

/// What every request passes before its handler: who calls, whether it is over its rate, and
/// the deadline its backend calls share. One middleware for the three, holding only what they
/// use: each axum middleware layer clones its state and the inner service per request, and
/// three of them cloning the whole state (six gRPC channels) cost ~50 µs of CPU per request.
#[derive(Clone)]
struct RequestGate {
    identity: crate::identity::Identity,
    rate_limits: crate::rate_limit::RateLimits,
    timeout: std::time::Duration,
}

async fn gate(
    axum::extract::State(gate): axum::extract::State<RequestGate>,
    mut request: Request<Body>,
    next: axum::middleware::Next,
) -> Response {
    match crate::identity::caller_of(&gate.identity, request.headers()).await {
        Ok(caller) => request.extensions_mut().insert(caller),
        Err(refused) => return refused,
    };
    if let Some(refused) = gate.rate_limits.refusal(&request) {
        return refused;
    }
    crate::deadline::scope(gate.timeout, request, next).await
}

/// Spans are named by route template (`POST /api/reserve`), never by raw path, and continue the
/// caller's trace when the request carries `traceparent` and comes from a trusted network; an
/// unsampled request gets none.
fn http_span<B>(request: &Request<B>) -> tracing::Span {
    let decision = request
        .extensions()
        .get::<kit::sampling::Decision>()
        .cloned()
        .unwrap_or(kit::sampling::Decision::Untraced);
    let span = kit::sampling::root_span(&decision, || {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str);
        tracing::info_span!(
            "http",
            otel.name = %format_args!("{} {}", request.method(), route),
            otel.kind = "server",
            http.route = route,
            http.response.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        )
    });
    if matches!(
        decision,
        kit::sampling::Decision::Sampled { continues: true }
    ) {
        kit::trace_context::continue_from(&span, request.headers());
    }
    span
}

/// Whether the request comes from a network whose trace context (sampled flag included) the
/// gateway takes up; anyone else's is ignored, so a client cannot raise the sampling rate.
fn trusts_trace_context<B>(request: &Request<B>, trusted_tracers: &[ipnet::IpNet]) -> bool {
    if trusted_tracers.is_empty() {
        return false;
    }
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|info| trusted_tracers.iter().any(|net| net.contains(&info.0.ip())))
}

/// Records the status on the span (server errors mark it failed) and in the failure log:
/// shed, rate-limited, 503 and 504 answers only counted, other server errors logged singly up
/// to a few an interval.
#[derive(Clone)]
struct RecordStatus {
    failures: failure_log::FailureLog,
}

impl<B> OnResponse<B> for RecordStatus {
    fn on_response(
        self,
        response: &Response<B>,
        latency: std::time::Duration,
        span: &tracing::Span,
    ) {
        let status = response.status();
        span.record("http.response.status_code", status.as_u16());
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
        let shed = response
            .extensions()
            .get::<crate::metrics::Shed>()
            .is_some();
        if self.failures.record(status, shed) == failure_log::Logged::Singly {
            tracing::error!(
                parent: span,
                status = status.as_u16(),
                latency_ms = latency.as_secs_f64() * 1000.0,
                "request failed"
            );
        }
    }
}

async fn middleware_error(error: BoxError) -> Response {
    if error.is::<tower::timeout::error::Elapsed>() {
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "REQUEST_TIMEOUT",
            "the request took too long",
        )
        .into_response()
    } else if error.is::<tower::load_shed::error::Overloaded>() {
        // Shed cheaply and say when to come back, so clients spread their retries.
        let mut response = (
            [(http::header::RETRY_AFTER, "1")],
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "OVERLOADED",
                "too many requests in flight; retry shortly",
            ),
        )
            .into_response();
        response.extensions_mut().insert(crate::metrics::Shed);
        response
    } else {
        tracing::error!(%error, "middleware failure");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "internal error",
        )
        .into_response()
    }
}

fn panic_response(_panic: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL",
        "internal error",
    )
    .into_response()
}
