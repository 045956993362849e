//! Gateway configuration: environment (or flags), validated at start-up.

use std::{net::SocketAddr, time::Duration};

/// The public HTTP/JSON door of the ticketing system.
#[derive(clap::Parser, Clone, Debug)]
#[command(name = "gateway", version, about)]
pub struct Config {
    #[command(flatten)]
    pub identity: crate::identity::IdentityConfig,

    #[command(flatten)]
    pub rate_limit: crate::rate_limit::RateLimitConfig,

    #[command(flatten)]
    pub tracing: TraceConfig,

    #[command(flatten)]
    pub pages: crate::routes::pages::PagesConfig,

    #[command(flatten)]
    pub dev_sign_in: crate::routes::dev_sign_in::DevSignInConfig,

    #[command(flatten)]
    pub read_cache: crate::read_cache::ReadCacheConfig,

    /// HTTP listen address (port 0 picks a free port).
    #[arg(long, env = "GATEWAY_LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub listen_addr: SocketAddr,

    /// Share the listen address with other gateway processes that set it too (SO_REUSEPORT:
    /// the kernel spreads new connections over them), as `cargo xtask up --replicas N` runs N
    /// gateways behind one port. Off: a second gateway on the address fails to start.
    #[arg(long, env = "GATEWAY_REUSE_PORT", default_value_t = false, action = clap::ArgAction::Set)]
    pub reuse_port: bool,

    /// Where Prometheus scrapes `GET /metrics` (port 0 picks a free port).
    #[arg(long, env = "GATEWAY_METRICS_ADDR", default_value = "127.0.0.1:9180")]
    pub metrics_addr: SocketAddr,

    /// The queue service's gRPC URL: one URL, a comma-separated list of replicas, or
    /// dns:///name:port (every address the name resolves to, resolved again every 5 s; in
    /// Kubernetes a headless Service). Calls are balanced per call over the replicas.
    #[arg(long, env = "QUEUE_URL", default_value = "http://127.0.0.1:50051")]
    pub queue_url: String,

    /// The catalog service's gRPC URL (one, a list, or dns:///name:port, as QUEUE_URL).
    #[arg(long, env = "CATALOG_URL", default_value = "http://127.0.0.1:50052")]
    pub catalog_url: String,

    /// The reservation service's gRPC URL (one, a list, or dns:///name:port, as QUEUE_URL).
    #[arg(
        long,
        env = "RESERVATION_URL",
        default_value = "http://127.0.0.1:50053"
    )]
    pub reservation_url: String,

    /// Deadline of each gRPC call to a backend, in milliseconds.
    #[arg(long, env = "GATEWAY_GRPC_TIMEOUT_MS", default_value_t = 2000)]
    pub grpc_timeout_ms: u64,

    /// Deadline for connecting to a backend, in milliseconds.
    #[arg(long, env = "GATEWAY_GRPC_CONNECT_TIMEOUT_MS", default_value_t = 1000)]
    pub grpc_connect_timeout_ms: u64,

    /// Deadline of a whole HTTP request, in milliseconds (answered 504 past it).
    #[arg(long, env = "GATEWAY_REQUEST_TIMEOUT_MS", default_value_t = 5000)]
    pub request_timeout_ms: u64,

    /// The ceiling of the adaptive in-flight limit (the whole gateway's, not per route): past
    /// the limit new requests are shed at once with 503 `OVERLOADED` and `Retry-After`. The
    /// limit starts here and falls, towards `GATEWAY_MIN_IN_FLIGHT`, when latency rises under
    /// load (Gradient2; see overload.rs). Small on purpose: past capacity a fast 503 keeps the
    /// admitted requests quick and the system recovers as soon as the surge ends (10,000 let
    /// queues grow until throughput collapsed; see docs/benchmarks.md).
    #[arg(long, env = "GATEWAY_MAX_IN_FLIGHT", default_value_t = 512)]
    pub max_in_flight: usize,

    /// The floor of the adaptive in-flight limit (capped at `GATEWAY_MAX_IN_FLIGHT`): however
    /// slow the backends get, this many requests may be in flight.
    #[arg(long, env = "GATEWAY_MIN_IN_FLIGHT", default_value_t = 32)]
    pub min_in_flight: usize,

    /// The adaptive limit's averaging window, in milliseconds: the limit moves at most once
    /// per window (and per 10 completed requests).
    #[arg(long, env = "GATEWAY_LIMIT_WINDOW_MS", default_value_t = 100)]
    pub limit_window_ms: u64,

    /// How far the mean latency may rise above its long-run baseline before the adaptive
    /// limit falls (1.5: 50% above).
    #[arg(long, env = "GATEWAY_LIMIT_RTT_TOLERANCE", default_value_t = 1.5)]
    pub limit_rtt_tolerance: f64,

    /// How often, in milliseconds, the gateway logs one summary line of the requests it shed,
    /// rate-limited or failed with 503/504 (and of the 5xx errors past the first few logged
    /// singly), instead of a line per request.
    #[arg(
        long,
        env = "GATEWAY_FAILURE_LOG_INTERVAL_MS",
        default_value_t = 10_000
    )]
    pub failure_log_interval_ms: u64,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "GATEWAY_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// Deadline for a request's headers, in milliseconds: from the accept, or from the first
    /// byte of the next request on a kept-alive connection. Past it the connection is closed.
    #[arg(long, env = "GATEWAY_HEADER_READ_TIMEOUT_MS", default_value_t = 5000)]
    pub header_read_timeout_ms: u64,

    /// How long a kept-alive connection may wait for its next request, in milliseconds (keep
    /// it above the idle timeout of a proxy in front, or the proxy races the close).
    #[arg(long, env = "GATEWAY_IDLE_TIMEOUT_MS", default_value_t = 60_000)]
    pub idle_timeout_ms: u64,

    /// Deadline for reading a whole request body, in milliseconds (408 and the connection is
    /// closed past it). Bodies are read before the request takes an in-flight slot.
    #[arg(long, env = "GATEWAY_BODY_READ_TIMEOUT_MS", default_value_t = 5000)]
    pub body_read_timeout_ms: u64,

    /// Open client connections at most; past it new ones wait in the kernel's accept backlog
    /// and idle keep-alive connections are closed to make room. Each is a file descriptor:
    /// keep it below `ulimit -n` (a warning at start-up says when it is not).
    #[arg(long, env = "GATEWAY_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
}

impl Config {
    /// Rejects settings that cannot work, so a bad deployment fails at start-up.
    pub fn validate(&self) -> Result<(), String> {
        self.identity.validate()?;
        self.rate_limit.validate()?;
        self.pages.validate()?;
        self.dev_sign_in.validate(self.identity.mode)?;
        self.read_cache.validate()?;
        for (name, url) in [
            ("QUEUE_URL", &self.queue_url),
            ("CATALOG_URL", &self.catalog_url),
            ("RESERVATION_URL", &self.reservation_url),
        ] {
            kit::grpc::Target::parse(url).map_err(|error| format!("{name}: {error}"))?;
        }
        if self.grpc_timeout_ms == 0
            || self.grpc_connect_timeout_ms == 0
            || self.request_timeout_ms == 0
        {
            return Err("timeouts must be > 0".into());
        }
        if self.grpc_timeout_ms >= self.request_timeout_ms {
            return Err("GATEWAY_GRPC_TIMEOUT_MS must be below GATEWAY_REQUEST_TIMEOUT_MS".into());
        }
        if self.max_in_flight == 0 || self.min_in_flight == 0 || self.max_body_bytes == 0 {
            return Err(
                "GATEWAY_MAX_IN_FLIGHT, GATEWAY_MIN_IN_FLIGHT and GATEWAY_MAX_BODY_BYTES must be > 0"
                    .into(),
            );
        }
        if self.limit_window_ms == 0 || self.failure_log_interval_ms == 0 {
            return Err(
                "GATEWAY_LIMIT_WINDOW_MS and GATEWAY_FAILURE_LOG_INTERVAL_MS must be > 0".into(),
            );
        }
        // NaN fails this too.
        if !(1.0..=100.0).contains(&self.limit_rtt_tolerance) {
            return Err("GATEWAY_LIMIT_RTT_TOLERANCE must be between 1 and 100".into());
        }
        if self.header_read_timeout_ms == 0
            || self.idle_timeout_ms == 0
            || self.body_read_timeout_ms == 0
        {
            return Err(
                "GATEWAY_HEADER_READ_TIMEOUT_MS, GATEWAY_IDLE_TIMEOUT_MS and \
                 GATEWAY_BODY_READ_TIMEOUT_MS must be > 0"
                    .into(),
            );
        }
        // Linux's default fs.nr_open: more descriptors than this cannot exist in one process.
        if self.max_connections == 0 || self.max_connections > 1 << 20 {
            return Err("GATEWAY_MAX_CONNECTIONS must be between 1 and 1048576".into());
        }
        Ok(())
    }

    pub fn grpc_timeouts(&self) -> kit::grpc::ChannelTimeouts {
        kit::grpc::ChannelTimeouts {
            connect: Duration::from_millis(self.grpc_connect_timeout_ms),
            request: Duration::from_millis(self.grpc_timeout_ms),
        }
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The adaptive in-flight limit's settings.
    pub fn in_flight_limit(&self) -> crate::app::overload::Settings {
        crate::app::overload::Settings {
            floor: self.min_in_flight.min(self.max_in_flight),
            ceiling: self.max_in_flight,
            window: Duration::from_millis(self.limit_window_ms),
            tolerance: self.limit_rtt_tolerance,
        }
    }

    pub fn failure_log_interval(&self) -> Duration {
        Duration::from_millis(self.failure_log_interval_ms)
    }
}

/// Whose trace context the gateway continues.
#[derive(clap::Args, Clone, Debug)]
pub struct TraceConfig {
    /// Client networks (CIDR, comma-separated) whose `traceparent` is continued, sampling
    /// decision included. Anyone else's is ignored and the request starts its own trace, so
    /// a client cannot raise the sampling rate by sending the sampled flag.
    #[arg(long, env = "GATEWAY_TRACE_TRUSTED_NETWORKS", value_delimiter = ',')]
    pub trace_trusted_networks: Vec<ipnet::IpNet>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn defaults_are_valid_and_bad_urls_fail_fast() {
        let config = Config::parse_from(["gateway", "--auth=trusted"]);
        assert_eq!(config.validate(), Ok(()));
        let config = Config::parse_from([
            "gateway",
            "--auth=trusted",
            "--queue-url",
            "127.0.0.1:50051",
        ]);
        assert!(config.validate().is_err());
        let replicas = Config::parse_from([
            "gateway",
            "--auth=trusted",
            "--reservation-url=http://127.0.0.1:50053,http://127.0.0.1:50054",
            "--catalog-url=dns:///catalog:50052",
        ]);
        assert_eq!(replicas.validate(), Ok(()));
        let config = Config::parse_from(["gateway", "--auth=trusted", "--grpc-timeout-ms", "9000"]);
        assert!(config.validate().is_err());
        let config = Config::parse_from(["gateway", "--auth=trusted", "--limit-rtt-tolerance=0.5"]);
        assert!(config.validate().is_err());
        // A ceiling below the default floor is a fixed limit, not an error.
        let config = Config::parse_from(["gateway", "--auth=trusted", "--max-in-flight=1"]);
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.in_flight_limit().floor, 1);
    }

    #[test]
    fn the_gateway_refuses_to_start_without_an_explicit_identity_mode() {
        assert!(Config::try_parse_from(["gateway"]).is_err());
        let jwt_without_keys = Config::parse_from(["gateway", "--auth=jwt"]);
        assert!(jwt_without_keys.validate().is_err());
        let jwt = Config::parse_from([
            "gateway",
            "--auth=jwt",
            "--jwt-jwks-url=https://issuer.example/jwks.json",
            "--jwt-issuer=https://issuer.example/",
            "--jwt-audience=ticketing",
        ]);
        assert_eq!(jwt.validate(), Ok(()));
    }
}
