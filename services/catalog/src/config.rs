//! Catalog service configuration: environment (or flags), validated at start-up.

use std::{net::SocketAddr, time::Duration};

/// Reference data: concerts, options and seat maps on PostgreSQL.
#[derive(clap::Args, Clone, Debug)]
pub struct Config {
    #[command(flatten)]
    pub grpc: kit::grpc::ServerArgs,

    /// gRPC listen address (port 0 picks a free port).
    #[arg(long, env = "CATALOG_LISTEN_ADDR", default_value = "127.0.0.1:50052")]
    pub listen_addr: SocketAddr,

    /// Where Prometheus scrapes `GET /metrics` (port 0 picks a free port).
    #[arg(long, env = "CATALOG_METRICS_ADDR", default_value = "127.0.0.1:9182")]
    pub metrics_addr: SocketAddr,

    /// This service's own PostgreSQL database (created if missing, migrated at start-up).
    #[arg(
        long,
        env = "CATALOG_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/ticketing_catalog"
    )]
    pub database_url: String,

    /// Connection pool size.
    #[arg(long, env = "CATALOG_DB_POOL_SIZE", default_value_t = 16)]
    pub db_pool_size: u32,

    /// Deadline of each statement and of each wait for a connection, in milliseconds.
    #[arg(long, env = "CATALOG_DB_TIMEOUT_MS", default_value_t = 3000)]
    pub db_timeout_ms: u64,
}

impl Config {
    pub fn validate(&self) -> Result<(), String> {
        if self.db_pool_size == 0 || self.db_timeout_ms == 0 {
            return Err("CATALOG_DB_POOL_SIZE and CATALOG_DB_TIMEOUT_MS must be > 0".into());
        }
        Ok(())
    }

    pub fn pool_settings(&self) -> kit::postgres::PoolSettings {
        let timeout = Duration::from_millis(self.db_timeout_ms);
        kit::postgres::PoolSettings {
            max_connections: self.db_pool_size,
            acquire_timeout: timeout,
            statement_timeout: timeout,
        }
    }
}
