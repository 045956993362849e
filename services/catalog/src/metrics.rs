//! What the catalog exports on its metrics port: its gRPC calls (kit's layer), its pool's
//! usage and the time of each repository read.

use kit::metrics::{GrpcMetrics, PoolUsage, Registry, StoreLatency};

pub struct CatalogMetrics {
    pub grpc: GrpcMetrics,
    /// `store_operation_duration_seconds{store="postgres", operation=<repository read>}`.
    pub store: StoreLatency,
}

impl CatalogMetrics {
    pub fn register(registry: &mut Registry, pool: &sqlx::PgPool) -> Self {
        let pool = pool.clone();
        kit::metrics::register_pool(registry, "postgres", move || PoolUsage::of_pg(&pool));
        Self {
            grpc: GrpcMetrics::register(registry),
            store: StoreLatency::register(registry, "postgres"),
        }
    }
}
