//! Queue service configuration: environment (or flags), validated at start-up.

use std::{net::SocketAddr, time::Duration};

/// The virtual waiting room on Redis.
#[derive(clap::Parser, Clone, Debug)]
#[command(name = "queue", version, about)]
pub struct Config {
    #[command(flatten)]
    pub grpc: kit::grpc::ServerArgs,

    /// gRPC listen address (port 0 picks a free port).
    #[arg(long, env = "QUEUE_LISTEN_ADDR", default_value = "127.0.0.1:50051")]
    pub listen_addr: SocketAddr,

    /// Where Prometheus scrapes `GET /metrics` (port 0 picks a free port).
    #[arg(long, env = "QUEUE_METRICS_ADDR", default_value = "127.0.0.1:9181")]
    pub metrics_addr: SocketAddr,

    /// Redis URL.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,

    /// Prefix of every Redis key this service writes (isolates deployments and tests).
    #[arg(long, env = "QUEUE_KEY_PREFIX", default_value = "queue")]
    pub key_prefix: String,

    /// Waiters admitted per second, per room (0 = no rate limit, only the cap).
    #[arg(long, env = "QUEUE_ADMISSION_RATE", default_value_t = 10.0)]
    pub admission_rate: f64,

    /// Most concurrently active users per room (0 = no cap, only the rate).
    #[arg(long, env = "QUEUE_ACTIVE_CAP", default_value_t = 1000)]
    pub active_cap: u32,

    /// How long an admitted token stays ACTIVE, in seconds.
    #[arg(long, env = "QUEUE_ACTIVE_TTL_SECS", default_value_t = 600)]
    pub active_ttl_secs: u64,

    /// A waiter who has not polled for this many seconds loses their place.
    #[arg(long, env = "QUEUE_WAITING_GRACE_SECS", default_value_t = 60)]
    pub waiting_grace_secs: u64,

    /// An admitted user who makes no reservation call (a hold or a payment) within this many
    /// seconds of admission gives the slot back to the line (0 = never).
    #[arg(long, env = "QUEUE_ADMITTED_IDLE_SECS", default_value_t = 120)]
    pub admitted_idle_secs: u64,

    /// The reservation service's gRPC URL (one, a comma-separated list of replicas, or
    /// dns:///name:port; calls are balanced over the replicas): the admitter asks it each tick
    /// for the seats left (a sold-out room stops admitting) and how its holds fare (the
    /// admission rate drops while they are slow). Empty: neither, the configured rate always.
    #[arg(
        long,
        env = "QUEUE_RESERVATION_URL",
        default_value = "http://127.0.0.1:50053"
    )]
    pub reservation_url: String,

    /// Deadline of the admitter's call to the reservation service, in milliseconds.
    #[arg(long, env = "QUEUE_RESERVATION_TIMEOUT_MS", default_value_t = 250)]
    pub reservation_timeout_ms: u64,

    /// Holds slower than this on average (ms) lower the admission rate.
    #[arg(long, env = "QUEUE_HOLD_LATENCY_TARGET_MS", default_value_t = 250)]
    pub hold_latency_target_ms: u64,

    /// More holds than this in flight at the reservation service lower the admission rate.
    #[arg(long, env = "QUEUE_HOLDS_IN_FLIGHT_TARGET", default_value_t = 128)]
    pub holds_in_flight_target: u32,

    /// Admission tick, in milliseconds.
    #[arg(long, env = "QUEUE_ADMISSION_TICK_MS", default_value_t = 100)]
    pub admission_tick_ms: u64,

    /// Most rooms one admission tick steps; the admitter pages through the room set with a
    /// cursor, so with more rooms than this every room still gets its turn, one pass per
    /// ceil(rooms / this) ticks.
    #[arg(long, env = "QUEUE_ADMITTER_ROOMS_PER_TICK", default_value_t = 256)]
    pub admitter_rooms_per_tick: usize,

    /// How many rooms' admission scripts one tick has in flight at once.
    #[arg(long, env = "QUEUE_ADMITTER_CONCURRENCY", default_value_t = 4)]
    pub admitter_concurrency: usize,

    /// Run the admission ticker in this process (one replica at a time holds the lease).
    #[arg(long, env = "QUEUE_ADMITTER", default_value_t = true, action = clap::ArgAction::Set)]
    pub admitter: bool,

    /// Deadline of each Redis round trip, in milliseconds.
    #[arg(long, env = "QUEUE_REDIS_TIMEOUT_MS", default_value_t = 1000)]
    pub redis_timeout_ms: u64,

    /// Redis connection pool size (pooled connections only).
    #[arg(long, env = "QUEUE_REDIS_POOL_SIZE", default_value_t = 32)]
    pub redis_pool_size: usize,

    /// One multiplexed Redis connection, pipelining every in-flight call, instead of the pool
    /// (the cost runs: issue-token 145 -> 98 µs of CPU per request across gateway, queue and
    /// Redis, check-queue 127 -> 83 µs).
    #[arg(long, env = "QUEUE_REDIS_MULTIPLEXED", default_value_t = true, action = clap::ArgAction::Set)]
    pub redis_multiplexed: bool,

    /// REDIS_URL names a Redis Cluster: one or more of its nodes, comma-separated. Each room's
    /// scripts go to the primary that holds the room's slot, over one multiplexed connection
    /// per node (QUEUE_REDIS_MULTIPLEXED and the pool size do not apply).
    #[arg(long, env = "QUEUE_REDIS_CLUSTER", default_value_t = false, action = clap::ArgAction::Set)]
    pub redis_cluster: bool,
}

impl Config {
    /// Rejects settings that cannot work, so a bad deployment fails at start-up.
    pub fn validate(&self) -> Result<(), String> {
        // The same rule an operator's settings keep.
        crate::settings::check_rate_and_cap(self.admission_rate, self.active_cap)
            .map_err(|rule| format!("QUEUE_ADMISSION_RATE and QUEUE_ACTIVE_CAP: {rule}"))?;
        if self.active_ttl_secs == 0 || self.waiting_grace_secs == 0 {
            return Err("QUEUE_ACTIVE_TTL_SECS and QUEUE_WAITING_GRACE_SECS must be > 0".into());
        }
        if self.admission_tick_ms == 0 || self.redis_timeout_ms == 0 || self.redis_pool_size == 0 {
            return Err("tick, Redis timeout and pool size must be > 0".into());
        }
        if self.admitter_rooms_per_tick == 0 {
            return Err("QUEUE_ADMITTER_ROOMS_PER_TICK must be > 0".into());
        }
        let pooled = !self.redis_multiplexed && !self.redis_cluster;
        if self.admitter_concurrency == 0
            || (pooled && self.admitter_concurrency > self.redis_pool_size)
        {
            return Err(
                "QUEUE_ADMITTER_CONCURRENCY must be > 0 and at most QUEUE_REDIS_POOL_SIZE".into(),
            );
        }
        if !self.reservation_url.is_empty() {
            kit::grpc::Target::parse(&self.reservation_url)
                .map_err(|error| format!("QUEUE_RESERVATION_URL (or empty): {error}"))?;
            if self.reservation_timeout_ms == 0
                || self.hold_latency_target_ms == 0
                || self.holds_in_flight_target == 0
            {
                return Err("the reservation timeout and the hold targets must be > 0".into());
            }
        }
        // A brace would start a hash tag before the room's own and put rooms together.
        if self.key_prefix.is_empty()
            || self
                .key_prefix
                .contains(|c: char| c.is_whitespace() || c == '{' || c == '}')
        {
            return Err("QUEUE_KEY_PREFIX must be non-empty without spaces or braces".into());
        }
        Ok(())
    }

    pub fn active_ttl(&self) -> Duration {
        Duration::from_secs(self.active_ttl_secs)
    }

    pub fn waiting_grace(&self) -> Duration {
        Duration::from_secs(self.waiting_grace_secs)
    }

    pub fn admission_tick(&self) -> Duration {
        Duration::from_millis(self.admission_tick_ms)
    }

    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms)
    }

    /// The connections to Redis this configuration asks for (nothing connects yet).
    pub fn redis_connections(&self) -> Result<crate::store::Connections, crate::error::QueueError> {
        use crate::store::Connections;
        let deadline = self.redis_timeout();
        if self.redis_cluster {
            Connections::cluster(&self.redis_url, deadline)
        } else if self.redis_multiplexed {
            Connections::multiplexed(&self.redis_url, deadline)
        } else {
            Connections::pooled(&self.redis_url, self.redis_pool_size, deadline)
        }
    }

    /// The waiting room's rules as configured.
    pub fn policy(&self) -> crate::policy::Policy {
        crate::policy::Policy {
            admission_rate: self.admission_rate,
            active_cap: self.active_cap,
            active_ttl: self.active_ttl(),
            waiting_grace: self.waiting_grace(),
            admitted_idle: Duration::from_secs(self.admitted_idle_secs),
        }
    }

    /// What counts as a struggling reservation service.
    pub fn targets(&self) -> crate::outflow::Targets {
        crate::outflow::Targets {
            hold_latency: Duration::from_millis(self.hold_latency_target_ms),
            holds_in_flight: self.holds_in_flight_target,
        }
    }

    pub fn reservation_timeout(&self) -> Duration {
        Duration::from_millis(self.reservation_timeout_ms)
    }

    /// How much work one admission tick may do: the configured rooms and concurrency, and no
    /// new script started past one tick interval.
    pub fn admitter_limits(&self) -> crate::admitter::Limits {
        crate::admitter::Limits {
            rooms_per_tick: self.admitter_rooms_per_tick,
            concurrency: self.admitter_concurrency,
            budget: self.admission_tick(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Config {
        Config::parse_from(std::iter::once("queue").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(parse(&[]).validate(), Ok(()));
    }

    #[test]
    fn rejects_no_rate_and_no_cap() {
        let config = parse(&["--admission-rate", "0", "--active-cap", "0"]);
        assert!(config.validate().is_err());
    }

    #[test]
    fn rejects_an_admitter_that_does_no_work_or_outgrows_the_pool() {
        assert!(
            parse(&["--admitter-rooms-per-tick", "0"])
                .validate()
                .is_err()
        );
        assert!(parse(&["--admitter-concurrency", "0"]).validate().is_err());
        let pooled = ["--redis-multiplexed", "false", "--redis-pool-size", "4"];
        let config = parse(&[&pooled[..], &["--admitter-concurrency", "8"]].concat());
        assert!(config.validate().is_err());
        // One multiplexed connection carries any number of scripts at once, and so does a
        // cluster connection.
        let config = parse(&["--admitter-concurrency", "8", "--redis-pool-size", "4"]);
        assert_eq!(config.validate(), Ok(()));
        let cluster = ["--redis-cluster", "true", "--admitter-concurrency", "8"];
        let config = parse(&[&pooled[..], &cluster[..]].concat());
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn rejects_a_key_prefix_with_a_brace_that_would_hide_the_rooms_hash_tag() {
        for prefix in ["queue{x}", "{queue}", "a b", ""] {
            let config = parse(&["--key-prefix", prefix]);
            assert!(config.validate().is_err(), "{prefix:?}");
        }
        assert_eq!(parse(&["--key-prefix", "prod:queue"]).validate(), Ok(()));
    }

    #[test]
    fn a_cluster_takes_its_nodes_from_redis_url() {
        let config = parse(&[
            "--redis-cluster=true",
            "--redis-url=redis://10.0.0.1:6379, redis://10.0.0.2:6379",
        ]);
        assert!(matches!(
            config.redis_connections(),
            Ok(crate::store::Connections::Cluster(_))
        ));
        let config = parse(&["--redis-cluster=true", "--redis-url=http://nope"]);
        assert!(config.redis_connections().is_err());
    }

    #[test]
    fn the_policy_is_the_configured_rate_cap_and_times() {
        let policy = parse(&[
            "--admission-rate=2.5",
            "--active-cap=7",
            "--active-ttl-secs=30",
            "--waiting-grace-secs=9",
        ])
        .policy();
        assert_eq!(policy.admission_rate, 2.5);
        assert_eq!(policy.active_cap, 7);
        assert_eq!(policy.active_ttl, Duration::from_secs(30));
        assert_eq!(policy.waiting_grace, Duration::from_secs(9));
    }

    #[test]
    fn rejects_a_reservation_url_that_is_not_http_and_zero_targets() {
        assert!(parse(&["--reservation-url=redis://x"]).validate().is_err());
        assert!(parse(&["--hold-latency-target-ms=0"]).validate().is_err());
        assert_eq!(
            parse(&["--reservation-url=", "--hold-latency-target-ms=0"]).validate(),
            Ok(()),
            "without a reservation service the targets do not matter"
        );
    }

    #[test]
    fn rejects_a_negative_or_too_high_rate() {
        assert!(parse(&["--admission-rate=-1"]).validate().is_err());
        assert!(parse(&["--admission-rate=100001"]).validate().is_err());
    }
}
