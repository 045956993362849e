//! W3C trace context (traceparent/tracestate) and baggage, carried across every hop. Done once,
//! in layers: the gateway's HTTP layer extracts from incoming headers, the gRPC client layer
//! injects into outgoing metadata, the gRPC server layer extracts in every service. Handlers
//! never see it.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use opentelemetry::{global, propagation::Extractor, propagation::Injector};
use tracing::{Instrument, Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Makes `span` a child of the trace context the headers carry (if any).
pub fn continue_from(span: &Span, headers: &HeaderMap) {
    let parent =
        global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)));
    // Without an OpenTelemetry layer there is nothing to attach to; that is not an error.
    let _ = span.set_parent(parent);
}

/// Writes `span`'s trace context into outgoing headers.
pub fn inject_into(span: &Span, headers: &mut HeaderMap) {
    let context = span.context();
    global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(headers))
    });
}

/// Records the gRPC status of a response: unary errors are trailers-only, so their
/// `grpc-status` is in the headers; a success's status arrives in trailers (OK).
fn record_grpc_status<B>(span: &Span, response: &Response<B>) {
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<i32>().ok())
        .unwrap_or(0);
    span.record("rpc.grpc.status_code", code);
    if code != 0 {
        span.record("otel.status_code", "ERROR");
        if let Some(message) = response
            .headers()
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
        {
            span.record("otel.status_description", message);
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Which side of a gRPC call a layer traces.
#[derive(Clone, Copy, Debug)]
enum Side {
    Client,
    Server,
}

/// A span per gRPC call named by its method (`ticketing.queue.v1.QueueService/ValidateToken`),
/// carrying trace context across the call. Spans carry only what the viewer and the bench's
/// bottleneck report read: the name (service and method are in it), the kind and the status.
#[derive(Clone, Copy, Debug)]
pub struct GrpcTraceLayer {
    side: Side,
}

impl GrpcTraceLayer {
    /// For servers: continue the caller's trace.
    pub fn server() -> Self {
        Self { side: Side::Server }
    }

    /// For clients: pass the current trace on.
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
        // "/pkg.Service/Method" → "pkg.Service/Method".
        let name = request.uri().path().trim_start_matches('/');
        let span = match self.side {
            Side::Server => {
                // A call is a root in this service: the decision is the caller's, carried in
                // its traceparent (a call without one decides by the ratio).
                let decision = crate::sampling::decide(Some(request.headers()));
                let span = crate::sampling::root_span(&decision, || {
                    tracing::info_span!(
                        "grpc.server",
                        otel.name = name,
                        otel.kind = "server",
                        rpc.grpc.status_code = Empty,
                        otel.status_code = Empty,
                        otel.status_description = Empty,
                    )
                });
                if span.is_disabled() {
                    let inner = &mut self.inner;
                    return Box::pin(crate::sampling::call_under(&decision, || {
                        inner.call(request)
                    }));
                }
                if matches!(
                    decision,
                    crate::sampling::Decision::Sampled { continues: true }
                ) {
                    continue_from(&span, request.headers());
                }
                span
            }
            Side::Client => {
                let span = tracing::info_span!(
                    "grpc.client",
                    otel.name = name,
                    otel.kind = "client",
                    rpc.grpc.status_code = Empty,
                    otel.status_code = Empty,
                    otel.status_description = Empty,
                );
                if span.is_disabled() {
                    // Unsampled (or not traced): no span, only the decision passed on.
                    crate::sampling::inject_unsampled(request.headers_mut());
                    return Box::pin(self.inner.call(request));
                }
                inject_into(&span, request.headers_mut());
                span
            }
        };
        // The service that was polled ready is the one to call; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(
            async move {
                let result = inner.call(request).await;
                let span = Span::current();
                match &result {
                    Ok(response) => record_grpc_status(&span, response),
                    Err(_) => {
                        span.record("otel.status_code", "ERROR");
                        span.record("otel.status_description", "transport error");
                    }
                }
                result
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use tracing_subscriber::layer::SubscriberExt;

    use super::{continue_from, inject_into};

    #[test]
    fn trace_context_and_baggage_pass_from_incoming_headers_through_child_spans_to_outgoing_ones() {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry::propagation::TextMapCompositePropagator::new(vec![
                Box::new(opentelemetry_sdk::propagation::TraceContextPropagator::new()),
                Box::new(opentelemetry_sdk::propagation::BaggagePropagator::new()),
            ]),
        );
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(InMemorySpanExporter::default())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let mut incoming = HeaderMap::new();
            incoming.insert(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                    .parse()
                    .unwrap(),
            );
            incoming.insert("baggage", "tenant=acme".parse().unwrap());
            let server = tracing::info_span!("server");
            continue_from(&server, &incoming);
            let client = tracing::info_span!(parent: &server, "client");
            let mut outgoing = HeaderMap::new();
            inject_into(&client, &mut outgoing);
            let traceparent = outgoing
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            assert!(
                traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
                "{traceparent}"
            );
            assert!(
                !traceparent.contains("00f067aa0ba902b7"),
                "the child is a new span: {traceparent}"
            );
            assert_eq!(
                outgoing.get("baggage").and_then(|v| v.to_str().ok()),
                Some("tenant=acme")
            );
        });
    }
}
