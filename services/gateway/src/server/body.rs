//! Reads every request body into memory *before* the request takes an in-flight slot.
//!
//! Without it a handler reads its body while holding one of the `GATEWAY_MAX_IN_FLIGHT`
//! slots, so a few hundred clients trickling bodies a byte at a time shed everyone else. This
//! layer sits outside `.load_shed().concurrency_limit(..)`: the body is read here, bounded in
//! size (`GATEWAY_MAX_BODY_BYTES`, 413 `PAYLOAD_TOO_LARGE`) and in time
//! (`GATEWAY_BODY_READ_TIMEOUT_MS`, 408 `BODY_TIMEOUT`), and only then does the request ask for
//! a slot. Handlers get a fully buffered body, so `JsonBody` and `DefaultBodyLimit` work as
//! before (the buffered body is within the limit). After a refusal the connection is closed
//! (`Connection: close` on HTTP/1): the rest of the body is never read.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::{Body, HttpBody},
    http::{HeaderValue, Request, StatusCode, Version, header},
    response::{IntoResponse, Response},
};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tower::{Layer, Service, ServiceExt};

use crate::{config::Config, error::ApiError};

/// The body-buffering layer.
#[derive(Clone, Copy, Debug)]
pub struct BufferBodyLayer {
    max_bytes: usize,
    timeout: Duration,
}

impl BufferBodyLayer {
    pub fn new(max_bytes: usize, timeout: Duration) -> Self {
        Self { max_bytes, timeout }
    }

    /// `GATEWAY_MAX_BODY_BYTES` and `GATEWAY_BODY_READ_TIMEOUT_MS`.
    pub fn from_config(config: &Config) -> Self {
        Self::new(
            config.max_body_bytes,
            Duration::from_millis(config.body_read_timeout_ms),
        )
    }
}

impl<S> Layer<S> for BufferBodyLayer {
    type Service = BufferBody<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BufferBody {
            inner,
            limits: *self,
        }
    }
}

/// The service of [`BufferBodyLayer`].
#[derive(Clone, Debug)]
pub struct BufferBody<S> {
    inner: S,
    limits: BufferBodyLayer,
}

impl<S> Service<Request<Body>> for BufferBody<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    /// Always ready, without asking the inner service: its readiness *is* the in-flight slot
    /// (`ConcurrencyLimit` takes its permit in `poll_ready`), and asking here would take the
    /// slot before the body is read. It is asked in `call`, once the body is in memory.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        let limits = self.limits;
        Box::pin(async move {
            match buffer(request, limits).await {
                Ok(request) => inner.oneshot(request).await,
                Err(refusal) => Ok(refusal),
            }
        })
    }
}

async fn buffer(
    request: Request<Body>,
    limits: BufferBodyLayer,
) -> Result<Request<Body>, Response> {
    let (parts, body) = request.into_parts();
    if body.is_end_stream() {
        return Ok(Request::from_parts(parts, body));
    }
    let version = parts.version;
    let too_large = || {
        refuse(
            version,
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                format!("request body is larger than {} bytes", limits.max_bytes),
            ),
        )
    };
    // A declared Content-Length over the limit is refused without reading a byte.
    let max = u64::try_from(limits.max_bytes).unwrap_or(u64::MAX);
    if body.size_hint().lower() > max {
        return Err(too_large());
    }
    match tokio::time::timeout(
        limits.timeout,
        Limited::new(body, limits.max_bytes).collect(),
    )
    .await
    {
        Ok(Ok(collected)) => Ok(Request::from_parts(parts, Body::from(collected.to_bytes()))),
        Ok(Err(error)) if error.is::<LengthLimitError>() => Err(too_large()),
        Ok(Err(error)) => {
            tracing::debug!(%error, "request body could not be read");
            Err(refuse(
                version,
                ApiError::bad_request("INVALID_BODY", "could not read the request body"),
            ))
        }
        Err(_elapsed) => Err(refuse(
            version,
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "BODY_TIMEOUT",
                format!(
                    "the request body did not arrive within {} ms",
                    limits.timeout.as_millis()
                ),
            ),
        )),
    }
}

/// The error, and the end of the connection: the unread rest of the body is never read.
fn refuse(version: Version, error: ApiError) -> Response {
    let mut response = error.into_response();
    if version <= Version::HTTP_11 {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
