//! Connection pool usage read at scrape time: `store_pool_connections{pool, state}` with
//! `state` one of `open`, `idle`, `max` (and `waiting` where the pool knows it). Nothing is
//! recorded per call; each scrape asks the pools.

use std::fmt;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::gauge::ConstGauge,
};

use super::Registry;

/// One pool's usage at the moment of a scrape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolUsage {
    /// Connections open (idle or in use).
    pub open: u64,
    pub idle: u64,
    pub max: u64,
    /// Callers waiting for a connection, when the pool reports it.
    pub waiting: Option<u64>,
}

#[cfg(feature = "postgres")]
impl PoolUsage {
    /// A sqlx PostgreSQL pool's usage (sqlx does not report waiters).
    pub fn of_pg(pool: &sqlx::PgPool) -> Self {
        Self {
            open: u64::from(pool.size()),
            idle: u64::try_from(pool.num_idle()).unwrap_or(u64::MAX),
            max: u64::from(pool.options().get_max_connections()),
            waiting: None,
        }
    }
}

type Probe = Box<dyn Fn() -> PoolUsage + Send + Sync>;

struct PoolCollector {
    pool: &'static str,
    probe: Probe,
}

impl fmt::Debug for PoolCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolCollector")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let usage = (self.probe)();
        let states = [
            ("open", Some(usage.open)),
            ("idle", Some(usage.idle)),
            ("max", Some(usage.max)),
            ("waiting", usage.waiting),
        ];
        let gauge = ConstGauge::new(0i64);
        let mut metric = encoder.encode_descriptor(
            "store_pool_connections",
            "Connections of a store's pool by state (open, idle, max, waiting), read at scrape time",
            None,
            gauge.metric_type(),
        )?;
        for (state, value) in states {
            let Some(value) = value else { continue };
            let value = i64::try_from(value).unwrap_or(i64::MAX);
            let labels = [("pool", self.pool), ("state", state)];
            ConstGauge::new(value).encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Exports the usage `probe` reports for the pool named `pool` (e.g. `postgres`, `redis`).
pub fn register_pool(
    registry: &mut Registry,
    pool: &'static str,
    probe: impl Fn() -> PoolUsage + Send + Sync + 'static,
) {
    registry.register_collector(Box::new(PoolCollector {
        pool,
        probe: Box::new(probe),
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_usage_is_read_at_each_scrape() {
        let mut registry = Registry::default();
        let open = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(3));
        let seen = open.clone();
        register_pool(&mut registry, "redis", move || PoolUsage {
            open: seen.load(std::sync::atomic::Ordering::Relaxed),
            idle: 1,
            max: 32,
            waiting: Some(0),
        });
        let text = super::super::encode(&registry);
        assert!(
            text.contains(r#"store_pool_connections{pool="redis",state="open"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"store_pool_connections{pool="redis",state="max"} 32"#),
            "{text}"
        );
        assert!(
            text.contains(r#"store_pool_connections{pool="redis",state="waiting"} 0"#),
            "{text}"
        );
        open.store(5, std::sync::atomic::Ordering::Relaxed);
        let text = super::super::encode(&registry);
        assert!(
            text.contains(r#"store_pool_connections{pool="redis",state="open"} 5"#),
            "{text}"
        );
    }
}
