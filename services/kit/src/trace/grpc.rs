//! A span per gRPC call, on both sides, named by its method
//! (`ticketing.queue.v1.QueueService/ValidateToken`), carrying the trace across the call: the
//! client layer writes `traceparent` (and the caller's `baggage`), the server layer takes the
//! decision from it. Spans carry what the viewer and the bench's bottleneck report read: the
//! name (service and method are in it), the kind and the status.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::{Request, Response};

use super::{record::Kind, sampling, span::Span};

/// Which side of a gRPC call a layer traces.
#[derive(Clone, Copy, Debug)]
enum Side {
    Client,
    Server,
}

#[derive(Clone, Copy, Debug)]
pub struct GrpcTraceLayer {
    side: Side,
}

impl GrpcTraceLayer {
    /// For servers: the call is a root in this service, decided by the caller's context.
    pub fn server() -> Self {
        Self { side: Side::Server }
    }

    /// For clients: a child of the current span, passing the trace on.
    pub fn client() -> Self {
        Self { side: Side::Client }
    }
}

impl<S> tower::Layer<S> for GrpcTraceLayer {
    type Service = GrpcTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcTrace {
            inner,
            side: self.side,
        }
    }
}

#[derive(Clone, Debug)]
pub struct GrpcTrace<S> {
    inner: S,
    side: Side,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// "/pkg.Service/Method" → "pkg.Service/Method".
fn method_name<B>(request: &Request<B>) -> String {
    request.uri().path().trim_start_matches('/').to_owned()
}

/// A unary error is trailers-only, so its `grpc-status` is in the headers; a success's status
/// arrives in trailers (OK).
fn record_grpc_status<B>(span: &mut Span, response: &Response<B>) {
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<i32>().ok())
        .unwrap_or(0);
    span.set("rpc.grpc.status_code", code);
    if code != 0 {
        let message = response
            .headers()
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        span.fail(message);
    }
}

impl<S, B, R> tower::Service<Request<B>> for GrpcTrace<S>
where
    S: tower::Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<R>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let span = match self.side {
            Side::Server => sampling::decide(Some(request.headers()))
                .root(Kind::Server, || method_name(&request)),
            Side::Client => {
                let span = Span::child(Kind::Client, || method_name(&request));
                span.inject(request.headers_mut());
                span
            }
        };
        // The service that was polled ready is the one to call; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let call = span.in_scope(|| inner.call(request));
        if !span.is_recording() {
            // Untraced or unsampled: no span, only the position passed on.
            return Box::pin(span.scope(call));
        }
        Box::pin(async move {
            let mut span = span;
            let result = span.scope(call).await;
            match &result {
                Ok(response) => record_grpc_status(&mut span, response),
                Err(_) => span.fail("transport error"),
            }
            result
        })
    }
}
