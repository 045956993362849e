//! Prometheus metrics shared by every service: the registry a service fills at start-up, a
//! small HTTP server answering `GET /metrics` with Prometheus text on its own port, a tower
//! layer counting gRPC calls by method and status with a latency histogram, pool usage gauges
//! read at scrape time, and a store latency histogram per store and operation.
//!
//! Metrics are infrastructure: what a service counts (rooms, holds) it defines itself with the
//! re-exported [`client`] crate and registers in the same [`Registry`].

mod exposition;
mod grpc;
mod histogram;
mod pool;
mod server;

#[cfg(feature = "http-client")]
pub use exposition::scrape;
pub use exposition::{Exposition, Sample};
pub use grpc::{GrpcMetrics, GrpcMetricsLayer, GrpcMetricsService, GrpcObserver, code_name};
pub use histogram::{Histogram, HistogramFamily, Snapshot};
pub use pool::{PoolUsage, register_pool};
pub use prometheus_client as client;
pub use prometheus_client::registry::Registry;
pub use server::{MetricsServer, encode, serve};

/// Latency bucket bounds in seconds: 0.5 ms to 10 s, about three per doubling, fine enough
/// that quantiles interpolated within a bucket (as `histogram_quantile` does) stay within a
/// few per cent.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03,
    0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.5,
    10.0,
];

/// What a service's start-up gives back: where it serves, where its metrics are, and the
/// future that serves until shutdown (the metrics server stops with it).
pub struct Started<F> {
    pub addr: std::net::SocketAddr,
    pub metrics_addr: std::net::SocketAddr,
    pub serve: F,
}

impl<F> Started<F> {
    /// The service's address and its serve future: what each service's `build` answers.
    pub fn into_parts(self) -> (std::net::SocketAddr, F) {
        (self.addr, self.serve)
    }
}

/// Time spent in one store's operations: `store_operation_duration_seconds{store, operation}`.
/// Clones share the histograms.
#[derive(Clone, Debug)]
pub struct StoreLatency {
    store: &'static str,
    family: HistogramFamily<[(&'static str, &'static str); 2]>,
}

impl StoreLatency {
    /// The histogram family for `store` (e.g. `postgres`, `redis`), registered in `registry`.
    pub fn register(registry: &mut Registry, store: &'static str) -> Self {
        let family = HistogramFamily::new(LATENCY_BUCKETS, 64);
        registry.register(
            "store_operation_duration_seconds",
            "Time of each store operation (statement, transaction or script), by store and operation",
            family.clone(),
        );
        Self { store, family }
    }

    /// Runs `operation` and records how long it took, whatever its outcome.
    pub async fn time<F: std::future::Future>(
        &self,
        name: &'static str,
        operation: F,
    ) -> F::Output {
        let started = std::time::Instant::now();
        let output = operation.await;
        self.family
            .get_or_create(&[("store", self.store), ("operation", name)])
            .observe(started.elapsed());
        output
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_rise_from_half_a_millisecond_to_ten_seconds() {
        assert_eq!(LATENCY_BUCKETS.first(), Some(&0.0005));
        assert_eq!(LATENCY_BUCKETS.last(), Some(&10.0));
        assert!(LATENCY_BUCKETS.windows(2).all(|w| w[0] < w[1]));
        // Never more than a doubling between neighbours.
        assert!(LATENCY_BUCKETS.windows(2).all(|w| w[1] / w[0] <= 2.0));
    }

    #[tokio::test]
    async fn store_latency_is_recorded_per_store_and_operation() {
        let mut registry = Registry::default();
        let latency = StoreLatency::register(&mut registry, "postgres");
        let answer = latency.time("hold", async { 7 }).await;
        assert_eq!(answer, 7);
        latency.time("hold", async {}).await;
        let text = encode(&registry);
        assert!(
            text.contains(
                r#"store_operation_duration_seconds_count{store="postgres",operation="hold"} 2"#
            ),
            "{text}"
        );
    }
}
