//! Tracing subscriber set-up. `init` returns a guard that flushes buffered telemetry on drop;
//! keep it alive for the life of `main`.

use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

/// Flushes telemetry when dropped (end of `main`, after the server future returns).
#[must_use = "telemetry is flushed when the guard drops; bind it to a variable in main"]
pub struct TelemetryGuard {
    service: &'static str,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        tracing::debug!(service = self.service, "telemetry flushed");
    }
}

/// Installs the global subscriber: `RUST_LOG` filter (default `info`), human-readable output,
/// or one JSON object per line when `LOG_FORMAT=json` (for log collectors).
/// Safe to call more than once (tests): later calls keep the first subscriber.
pub fn init(service: &'static str) -> TelemetryGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true),
            )
            .try_init()
    } else {
        registry.with(tracing_subscriber::fmt::layer()).try_init()
    };
    if result.is_ok() {
        tracing::info!(service, "telemetry initialised");
    }
    TelemetryGuard { service }
}
