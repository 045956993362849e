//! `GET /docs`: the interactive reference (Swagger UI, vendored under
//! assets/vendor/swagger-ui/, see its README) on `/openapi.json`, embedded in the binary. Its
//! Content-Security-Policy allows this origin only: no inline script (the initialiser is
//! docs-init.js), no outside fetches.

use axum::{
    Router,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};

use crate::{error::ApiError, extract::PathParams};

const PAGE: &str = include_str!("docs.html");
const INIT: &str = include_str!("docs-init.js");
const BUNDLE: &str = include_str!("../../assets/vendor/swagger-ui/swagger-ui-bundle.js");
const STYLE: &str = include_str!("../../assets/vendor/swagger-ui/swagger-ui.css");

/// This origin only. Images may also be `data:` URIs: the stylesheet draws its icons so.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// `/docs` and its files. Outside the document (see `openapi::UNDOCUMENTED`).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/docs", get(page))
        .route("/docs/{file}", get(file))
}

async fn page() -> Response {
    serve("text/html; charset=utf-8", PAGE)
}

async fn file(PathParams(name): PathParams<String>) -> Response {
    match name.as_str() {
        "swagger-ui-bundle.js" => serve("text/javascript; charset=utf-8", BUNDLE),
        "swagger-ui.css" => serve("text/css; charset=utf-8", STYLE),
        "docs-init.js" => serve("text/javascript; charset=utf-8", INIT),
        _ => ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "no such file",
        )
        .into_response(),
    }
}

fn serve(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            // Kept at most an hour: a new gateway may carry another Swagger UI.
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response()
}
