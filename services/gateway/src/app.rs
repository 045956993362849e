//! The router and its middleware: request tracing, a deadline on every request, load shedding
//! past the adaptive in-flight limit ([`overload`]), failures logged in aggregate
//! ([`failure_log`]), JSON for every failure (including panics and unknown routes).

pub mod failure_log;
pub mod overload;
mod request_span;

use std::{any::Any, sync::Arc};

use axum::{
    BoxError, Router,
    body::Body,
    error_handling::HandleErrorLayer,
    extract::DefaultBodyLimit,
    http::{Request, StatusCode},
    response::{IntoResponse, Response},
};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;

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
                // The trace's sampling decision, once, and each request's span and status.
                .layer(request_span::RequestSpanLayer::new(
                    trusted_tracers,
                    failures,
                ))
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
