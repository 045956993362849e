//! Per gRPC method on a server: `grpc_server_requests_total{method, code, error}` (the gRPC
//! status, from the `grpc-status` header of a trailers-only answer — how tonic sends every
//! error of a unary call — and OK otherwise; `error` is the stable `x-error-code` the service
//! attached, or empty) and `grpc_server_request_duration_seconds{method}` (until the response
//! headers). A service may add an observer to count its own outcomes (holds by outcome) from
//! the same facts, without touching its handlers.

use std::{
    collections::HashSet,
    future::Future,
    pin::Pin,
    sync::{Arc, RwLock},
    task::{Context, Poll},
    time::Instant,
};

use http::{Request, Response};
use prometheus_client::metrics::{counter::Counter, family::Family};

use super::{HistogramFamily, LATENCY_BUCKETS, Registry};
use crate::error_code;

/// Most distinct method labels; calls to further paths (a client probing names) count as
/// method `other`.
const MAX_METHODS: usize = 128;

type RequestLabels = [(&'static str, String); 3];

/// Sees every finished call: method (`Service/Method`), gRPC code name, stable error code.
pub type GrpcObserver = Arc<dyn Fn(&str, &'static str, Option<&str>) + Send + Sync>;

/// The gRPC server metrics of one process.
#[derive(Clone)]
pub struct GrpcMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily<[(&'static str, String); 1]>,
    methods: Arc<RwLock<HashSet<String>>>,
    observer: Option<GrpcObserver>,
}

impl std::fmt::Debug for GrpcMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcMetrics").finish_non_exhaustive()
    }
}

impl GrpcMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "grpc_server_requests",
            "gRPC calls answered, by method, gRPC status code and stable error code",
            requests.clone(),
        );
        let latency = HistogramFamily::new(LATENCY_BUCKETS, MAX_METHODS + 1);
        registry.register(
            "grpc_server_request_duration_seconds",
            "Time from a gRPC call's arrival to its response headers, by method",
            latency.clone(),
        );
        Self {
            requests,
            latency,
            methods: Arc::default(),
            observer: None,
        }
    }

    /// Also calls `observer` for every finished call.
    pub fn with_observer(mut self, observer: GrpcObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The layer to put on a tonic server.
    pub fn layer(&self) -> GrpcMetricsLayer {
        GrpcMetricsLayer {
            metrics: self.clone(),
        }
    }

    /// `/pkg.Service/Method` → `Service/Method`, or `other` past the method cap.
    fn method_label(&self, path: &str) -> String {
        let path = path.trim_start_matches('/');
        let short = match path.split_once('/') {
            Some((service, method)) => {
                let service = service.rsplit('.').next().unwrap_or(service);
                format!("{service}/{method}")
            }
            None => path.to_owned(),
        };
        if self.methods.read().is_ok_and(|m| m.contains(&short)) {
            return short;
        }
        match self.methods.write() {
            Ok(mut methods) if methods.len() < MAX_METHODS => {
                methods.insert(short.clone());
                short
            }
            _ => "other".to_owned(),
        }
    }

    fn record(&self, method: String, code: &'static str, error: Option<&str>, started: Instant) {
        self.latency
            .get_or_create(&[("method", method.clone())])
            .observe(started.elapsed());
        if let Some(observer) = &self.observer {
            observer(&method, code, error);
        }
        self.requests
            .get_or_create(&[
                ("method", method),
                ("code", code.to_owned()),
                ("error", error.unwrap_or("").to_owned()),
            ])
            .inc();
    }
}

/// The canonical name of a gRPC status code (`NOT_FOUND`), `UNKNOWN` for a number outside it.
pub fn code_name(code: i32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|index| NAMES.get(index))
        .copied()
        .unwrap_or("UNKNOWN")
}

#[derive(Clone, Debug)]
pub struct GrpcMetricsLayer {
    metrics: GrpcMetrics,
}

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct GrpcMetricsService<S> {
    inner: S,
    metrics: GrpcMetrics,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> tower::Service<Request<B>> for GrpcMetricsService<S>
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

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let started = Instant::now();
        let method = self.metrics.method_label(request.uri().path());
        let metrics = self.metrics.clone();
        // The service that was polled ready is the one to call; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let result = inner.call(request).await;
            match &result {
                Ok(response) => {
                    let headers = response.headers();
                    let code = headers
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i32>().ok())
                        .map_or("OK", code_name);
                    let error = headers
                        .get(error_code::METADATA_KEY)
                        .and_then(|v| v.to_str().ok());
                    metrics.record(method, code, error, started);
                }
                Err(_) => metrics.record(method, "UNKNOWN", None, started),
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_names_follow_the_grpc_numbering() {
        assert_eq!(code_name(0), "OK");
        assert_eq!(code_name(5), "NOT_FOUND");
        assert_eq!(code_name(16), "UNAUTHENTICATED");
        assert_eq!(code_name(17), "UNKNOWN");
        assert_eq!(code_name(-1), "UNKNOWN");
    }

    #[test]
    fn method_labels_drop_the_package_and_stop_growing_at_the_cap() {
        let metrics = GrpcMetrics::register(&mut Registry::default());
        assert_eq!(
            metrics.method_label("/ticketing.queue.v1.QueueService/IssueToken"),
            "QueueService/IssueToken"
        );
        for n in 0..MAX_METHODS {
            metrics.method_label(&format!("/x.S/M{n}"));
        }
        assert_eq!(metrics.method_label("/x.S/OneTooMany"), "other");
        assert_eq!(
            metrics.method_label("/ticketing.queue.v1.QueueService/IssueToken"),
            "QueueService/IssueToken"
        );
    }
}
