//! The router and its middleware: request tracing, a deadline on every request, load shedding
//! past the in-flight limit, JSON for every failure (including panics and unknown routes).

use std::any::Any;

use axum::{
    BoxError, Router,
    error_handling::HandleErrorLayer,
    extract::{DefaultBodyLimit, MatchedPath},
    http::{Request, StatusCode},
    response::{IntoResponse, Response},
};
use tower::ServiceBuilder;
use tower_http::{catch_panic::CatchPanicLayer, trace::TraceLayer};

use crate::{AppState, config::Config, error::ApiError, routes};

pub fn router(state: AppState, config: &Config) -> Router {
    Router::new()
        .merge(routes::queue::routes())
        .merge(routes::concerts::routes())
        .merge(routes::reservations::routes())
        .merge(routes::payments::routes())
        .merge(routes::wallets::routes())
        .merge(routes::health::routes())
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "method not allowed on this route",
            )
        })
        .with_state(state)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(
            ServiceBuilder::new()
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(TraceLayer::new_for_http().make_span_with(http_span))
                .layer(HandleErrorLayer::new(middleware_error))
                .load_shed()
                .concurrency_limit(config.max_in_flight)
                .timeout(config.request_timeout()),
        )
}

/// Spans are named by route template (`POST /queue/issue-token`), never by raw path.
fn http_span<B>(request: &Request<B>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    tracing::info_span!(
        "http",
        otel.name = %format!("{} {}", request.method(), route),
        http.request.method = %request.method(),
        http.route = route,
    )
}

async fn middleware_error(error: BoxError) -> ApiError {
    if error.is::<tower::timeout::error::Elapsed>() {
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "REQUEST_TIMEOUT",
            "the request took too long",
        )
    } else if error.is::<tower::load_shed::error::Overloaded>() {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "OVERLOADED",
            "too many requests in flight; retry shortly",
        )
    } else {
        tracing::error!(%error, "middleware failure");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "internal error",
        )
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
