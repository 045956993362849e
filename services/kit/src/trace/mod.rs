//! Traces: one span per hop and per store call, across every service, exported over OTLP.
//!
//! Not `tracing`'s spans: those are built, entered and exited on every poll by a registry and
//! each layer behind it, which on this system cost ~9 µs of CPU per span at 100% sampling.
//! Here a span is a small record made when the work starts and handed to the exporter when it
//! ends; while a traced future is polled its span is current in a thread-local, so the spans
//! it makes are its children. Logs stay on `tracing` ([`crate::telemetry`]).
//!
//! - [`rule`] and [`sampling`]: the rule, and the decision made with it once per trace at its
//!   root, carried in `traceparent`;
//! - [`span`] and [`record`]: a span, futures run in one, and what it records;
//! - [`grpc`]: the gRPC client and server layers that trace every call;
//! - [`export`]: the OTLP exporter and its standard `OTEL_*` configuration.

mod context;
pub mod export;
mod grpc;
mod otlp;
mod record;
mod rule;
mod sampling;
mod span;
#[cfg(feature = "testing")]
pub mod testing;

use std::future::Future;

pub use context::SpanContext;
pub use export::{ExportConfig, Exporter};
pub use grpc::{GrpcTrace, GrpcTraceLayer};
pub use otlp::service_name;
pub use record::{Fixed, Kind, Value};
pub use rule::{Rule, enabled};
pub use sampling::{Decision, decide};
pub use span::{Scoped, Span, Traced};

/// `future` in a client span named `name` (a call to a store: a Redis script, an SQL
/// statement) carrying `fixed` attributes, a child of the current span.
pub fn client<F: Future>(name: &'static str, fixed: Fixed, future: F) -> Traced<F> {
    Span::child(Kind::Client, || name)
        .with_fixed(fixed)
        .wrap(future)
}

/// `future` in an internal span named `name`, a child of the current span.
pub fn internal<F: Future>(name: &'static str, future: F) -> Traced<F> {
    Span::child(Kind::Internal, || name).wrap(future)
}

/// Fixed attributes of store calls, after OpenTelemetry's database conventions.
pub mod db {
    use super::Fixed;

    pub const POSTGRES: Fixed = &[("db.system", "postgresql")];
    pub const POSTGRES_SELECT: Fixed = &[("db.system", "postgresql"), ("db.operation", "SELECT")];
    pub const POSTGRES_INSERT: Fixed = &[("db.system", "postgresql"), ("db.operation", "INSERT")];
    pub const POSTGRES_UPDATE: Fixed = &[("db.system", "postgresql"), ("db.operation", "UPDATE")];
    /// A Lua script run by its digest.
    pub const REDIS_SCRIPT: Fixed = &[("db.system", "redis"), ("db.operation", "EVALSHA")];
}
