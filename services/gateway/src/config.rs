//! Gateway configuration: environment (or flags), validated at start-up.

use std::{net::SocketAddr, time::Duration};

/// The public HTTP/JSON door of the ticketing system.
#[derive(clap::Parser, Clone, Debug)]
#[command(name = "gateway", version, about)]
pub struct Config {
    /// HTTP listen address (port 0 picks a free port).
    #[arg(long, env = "GATEWAY_LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub listen_addr: SocketAddr,

    /// The queue service's gRPC URL.
    #[arg(long, env = "QUEUE_URL", default_value = "http://127.0.0.1:50051")]
    pub queue_url: String,

    /// The catalog service's gRPC URL.
    #[arg(long, env = "CATALOG_URL", default_value = "http://127.0.0.1:50052")]
    pub catalog_url: String,

    /// The reservation service's gRPC URL.
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

    /// Requests in flight before new ones are shed with 503. Small on purpose: past capacity,
    /// a fast 503 keeps the admitted requests quick and the system recovers as soon as the
    /// surge ends (10,000 let queues grow until throughput collapsed; see docs/benchmarks.md).
    #[arg(long, env = "GATEWAY_MAX_IN_FLIGHT", default_value_t = 512)]
    pub max_in_flight: usize,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "GATEWAY_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,
}

impl Config {
    /// Rejects settings that cannot work, so a bad deployment fails at start-up.
    pub fn validate(&self) -> Result<(), String> {
        for (name, url) in [
            ("QUEUE_URL", &self.queue_url),
            ("CATALOG_URL", &self.catalog_url),
            ("RESERVATION_URL", &self.reservation_url),
        ] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!(
                    "{name} must be an http:// or https:// URL, got {url:?}"
                ));
            }
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
        if self.max_in_flight == 0 || self.max_body_bytes == 0 {
            return Err("GATEWAY_MAX_IN_FLIGHT and GATEWAY_MAX_BODY_BYTES must be > 0".into());
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn defaults_are_valid_and_bad_urls_fail_fast() {
        let config = Config::parse_from(["gateway"]);
        assert_eq!(config.validate(), Ok(()));
        let config = Config::parse_from(["gateway", "--queue-url", "127.0.0.1:50051"]);
        assert!(config.validate().is_err());
        let config = Config::parse_from(["gateway", "--grpc-timeout-ms", "9000"]);
        assert!(config.validate().is_err());
    }
}
