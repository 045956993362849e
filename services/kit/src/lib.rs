//! Shared infrastructure for every service: telemetry, gRPC server and channel setup, health,
//! the error-code convention on gRPC metadata, and shutdown. Infrastructure only — no models,
//! SQL, Redis key layouts or domain errors live here.

/// The allocator each service binary declares as its `#[global_allocator]`.
#[cfg(feature = "allocator")]
pub use mimalloc::MiMalloc as Allocator;

#[cfg(feature = "dev-identity")]
pub mod dev_identity;
pub mod error_code;
pub mod grpc;
#[cfg(feature = "http-client")]
pub mod http_client;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod shutdown;
pub mod telemetry;
pub mod trace;
