//! Telemetry set-up for every service: logs through `tracing` (filtered by `RUST_LOG`, human
//! or, with `LOG_FORMAT=json`, one JSON object per line), and span export ([`crate::trace`]),
//! configured only by the standard `OTEL_*` variables and off when no endpoint is set.

use tracing_subscriber::{
    EnvFilter, Layer,
    filter::{FilterExt, filter_fn},
    layer::SubscriberExt,
    util::SubscriberInitExt,
};

use crate::trace::{ExportConfig, Exporter};

/// Flushes and stops span export when dropped (end of `main`, after the server future).
#[must_use = "spans are flushed when the guard drops; bind it to a variable in main"]
pub struct TelemetryGuard {
    exporter: Option<Exporter>,
}

impl TelemetryGuard {
    /// Sends every span ended so far.
    pub fn flush(&self) {
        if let Some(exporter) = &self.exporter {
            exporter.flush();
        }
    }
}

/// Installs the log subscriber and, when the standard variables name a collector, starts
/// exporting spans. Later calls in the same process keep the first subscriber and export.
pub fn init(service: &'static str) -> TelemetryGuard {
    install_logs();
    let exporter = ExportConfig::from_env(service).and_then(|config| {
        Exporter::start(config)
            .map_err(|error| eprintln!("telemetry: spans not exported: {error:#}"))
            .ok()
    });
    tracing::info!(
        service,
        spans_exported = exporter.is_some(),
        "telemetry initialised"
    );
    TelemetryGuard { exporter }
}

/// The global log subscriber: events only (`tracing` spans are never built: the traces are
/// [`crate::trace`]'s), filtered by `RUST_LOG` (default `info`). Returns whether this call
/// installed it.
pub fn install_logs() -> bool {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .and(filter_fn(|meta| meta.is_event()));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let layer = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_filter(filter)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer().with_filter(filter).boxed()
    };
    tracing_subscriber::registry()
        .with(layer)
        .try_init()
        .is_ok()
}
