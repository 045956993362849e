//! Reservation service configuration: environment (or flags), validated at start-up.

use std::{net::SocketAddr, time::Duration};

/// The largest per-user seat limit accepted (larger is a typo; 0 switches the limit off).
pub const MAX_SEATS_PER_USER: u32 = 10_000;

/// Seat holds, bookings, wallets and payments on PostgreSQL.
#[derive(clap::Parser, Clone, Debug)]
#[command(name = "reservation", version, about)]
pub struct Config {
    #[command(flatten)]
    pub grpc: kit::grpc::ServerArgs,

    /// gRPC listen address (port 0 picks a free port).
    #[arg(
        long,
        env = "RESERVATION_LISTEN_ADDR",
        default_value = "127.0.0.1:50053"
    )]
    pub listen_addr: SocketAddr,

    /// Where Prometheus scrapes `GET /metrics` (port 0 picks a free port).
    #[arg(
        long,
        env = "RESERVATION_METRICS_ADDR",
        default_value = "127.0.0.1:9183"
    )]
    pub metrics_addr: SocketAddr,

    /// This service's own PostgreSQL database (created if missing, migrated at start-up).
    #[arg(
        long,
        env = "RESERVATION_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/ticketing_reservation"
    )]
    pub database_url: String,

    /// The catalog service's gRPC URL (seat existence and prices): one, a comma-separated list
    /// of replicas, or dns:///name:port; calls are balanced over the replicas.
    #[arg(long, env = "CATALOG_URL", default_value = "http://127.0.0.1:50052")]
    pub catalog_url: String,

    /// How long a hold keeps a seat, in seconds.
    #[arg(long, env = "RESERVATION_HOLD_SECS", default_value_t = 300)]
    pub hold_secs: u64,

    /// How often expired holds are swept, in milliseconds.
    #[arg(long, env = "RESERVATION_SWEEP_INTERVAL_MS", default_value_t = 1000)]
    pub sweep_interval_ms: u64,

    /// Most seats one user may hold (unexpired) or have bought for one concert; 0 = no limit.
    #[arg(long, env = "RESERVATION_MAX_SEATS_PER_USER", default_value_t = 4)]
    pub max_seats_per_user: u32,

    /// Largest single wallet charge, in minor units.
    #[arg(
        long,
        env = "RESERVATION_MAX_CHARGE_MINOR",
        default_value_t = 100_000_000
    )]
    pub max_charge_minor: i64,

    /// How long first answers to Idempotency-Key requests are kept, in hours.
    #[arg(
        long,
        env = "RESERVATION_IDEMPOTENCY_RETENTION_HOURS",
        default_value_t = 24
    )]
    pub idempotency_retention_hours: u64,

    /// Connection pool size.
    #[arg(long, env = "RESERVATION_DB_POOL_SIZE", default_value_t = 32)]
    pub db_pool_size: u32,

    /// Deadline of each statement and of each wait for a connection, in milliseconds.
    #[arg(long, env = "RESERVATION_DB_TIMEOUT_MS", default_value_t = 3000)]
    pub db_timeout_ms: u64,

    /// Deadline of each call to the catalog, in milliseconds.
    #[arg(long, env = "RESERVATION_CATALOG_TIMEOUT_MS", default_value_t = 1000)]
    pub catalog_timeout_ms: u64,

    /// How old a concert's cached option list may grow before it is asked of the catalog
    /// again (an operator may add options), in milliseconds.
    #[arg(
        long,
        env = "RESERVATION_CONCERT_OPTIONS_STALE_MS",
        default_value_t = 10_000
    )]
    pub concert_options_stale_ms: u64,
}

impl Config {
    pub fn validate(&self) -> Result<(), String> {
        kit::grpc::Target::parse(&self.catalog_url)
            .map_err(|error| format!("CATALOG_URL: {error}"))?;
        if self.hold_secs == 0
            || self.sweep_interval_ms == 0
            || self.idempotency_retention_hours == 0
        {
            return Err("hold time, sweep interval and idempotency retention must be > 0".into());
        }
        if self.max_seats_per_user > MAX_SEATS_PER_USER {
            return Err(format!(
                "RESERVATION_MAX_SEATS_PER_USER must be at most {MAX_SEATS_PER_USER} (0 = no limit), got {}",
                self.max_seats_per_user
            ));
        }
        if self.max_charge_minor <= 0 {
            return Err("RESERVATION_MAX_CHARGE_MINOR must be > 0".into());
        }
        if self.db_pool_size == 0 || self.db_timeout_ms == 0 || self.catalog_timeout_ms == 0 {
            return Err("pool size and timeouts must be > 0".into());
        }
        if self.concert_options_stale_ms == 0 {
            return Err("RESERVATION_CONCERT_OPTIONS_STALE_MS must be > 0".into());
        }
        Ok(())
    }

    pub fn hold(&self) -> Duration {
        Duration::from_secs(self.hold_secs)
    }

    pub fn pool_settings(&self) -> kit::postgres::PoolSettings {
        let timeout = Duration::from_millis(self.db_timeout_ms);
        kit::postgres::PoolSettings {
            max_connections: self.db_pool_size,
            acquire_timeout: timeout,
            statement_timeout: timeout,
        }
    }

    pub fn concert_options_stale(&self) -> Duration {
        Duration::from_millis(self.concert_options_stale_ms)
    }

    pub fn catalog_timeouts(&self) -> kit::grpc::ChannelTimeouts {
        kit::grpc::ChannelTimeouts {
            connect: Duration::from_millis(self.catalog_timeout_ms),
            request: Duration::from_millis(self.catalog_timeout_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let config =
            Config::try_parse_from(std::iter::once("reservation").chain(args.iter().copied()))
                .map_err(|error| error.to_string())?;
        config.validate().map(|()| config)
    }

    #[test]
    fn the_seat_limit_defaults_to_four_and_zero_switches_it_off() {
        assert_eq!(parse(&[]).map(|c| c.max_seats_per_user), Ok(4));
        assert_eq!(
            parse(&["--max-seats-per-user=0"]).map(|c| c.max_seats_per_user),
            Ok(0)
        );
        assert!(parse(&["--max-seats-per-user=10000"]).is_ok());
        assert!(parse(&["--max-seats-per-user=10001"]).is_err());
        assert!(parse(&["--max-seats-per-user=-1"]).is_err());
        assert!(parse(&["--max-seats-per-user=four"]).is_err());
    }
}
