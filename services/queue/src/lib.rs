//! The queue service: a fair virtual waiting room on Redis.
//!
//! - `domain`: the room, token, queue entry and verdict types
//! - `policy`: admission rate, active cap, TTLs, poll advice
//! - `clock`: where "now" comes from (Redis, or a manual clock in tests)
//! - `settings`: the operator's side of a room: settings, changes, figures, history
//! - `schedule`: a room's scheduled opening (pre-queue, phase)
//! - `admission`: one admission step's bound and outcome
//! - `reservation`: what the admitter asks the reservation service (seats left, hold load)
//! - `store`: the Redis adapter (one Lua script per queue step)
//! - `admitter`: the admission ticker
//! - `outflow`: the admission pace below the configured ceiling, and why
//! - `grpc`: the gRPC edge and the conversions between wire and domain types
//! - `config`, `error`: settings, and errors with their gRPC statuses

pub mod admission;
pub mod admitter;
pub mod clock;
pub mod config;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod metrics;
pub mod outflow;
pub mod policy;
pub mod reservation;
pub mod schedule;
pub mod settings;
pub mod store;

use std::{future::Future, net::SocketAddr, time::Duration};

use ticketing_proto::queue::v1::queue_service_server::QueueServiceServer;

pub use clock::Clock;
pub use config::Config;
pub use policy::Policy;
pub use store::QueueStore;

/// Builds the store the configuration describes.
pub fn store(config: &Config) -> anyhow::Result<QueueStore> {
    config.validate().map_err(anyhow::Error::msg)?;
    let redis = config.redis_connections()?;
    Ok(QueueStore::on(
        redis,
        &config.key_prefix,
        config.policy(),
        config.redis_timeout(),
    ))
}

/// Binds the gRPC server and returns its address and the future that serves until `shutdown`.
pub async fn build(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(SocketAddr, impl Future<Output = anyhow::Result<()>>)> {
    let store = store(&config)?;
    build_with_store(config, store, shutdown).await
}

/// As [`build`], also saying where the metrics server listens.
pub async fn start(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<kit::metrics::Started<impl Future<Output = anyhow::Result<()>>>> {
    let store = store(&config)?;
    start_with_store(config, store, shutdown).await
}

/// As [`build`], on a store the caller made (tests use a manual clock).
pub async fn build_with_store(
    config: Config,
    store: QueueStore,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(SocketAddr, impl Future<Output = anyhow::Result<()>>)> {
    Ok(start_with_store(config, store, shutdown)
        .await?
        .into_parts())
}

/// As [`build_with_store`], also saying where the metrics server listens.
pub async fn start_with_store(
    config: Config,
    store: QueueStore,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<kit::metrics::Started<impl Future<Output = anyhow::Result<()>>>> {
    let mut registry = kit::metrics::Registry::default();
    let metrics = metrics::QueueMetrics::register(&mut registry, &store);
    let store = store.with_latency(metrics.store.clone());
    let (addr, incoming) = kit::grpc::bind(config.listen_addr).await?;
    let (reporter, health) = tonic_health::server::health_reporter();
    let health_probe = {
        let store = store.clone();
        kit::grpc::publish_health::<QueueServiceServer<grpc::QueueGrpc>, _, _>(
            reporter,
            Duration::from_secs(2),
            move || {
                let store = store.clone();
                async move { store.ping().await }
            },
        )
        .await
    };
    let reservation = if config.reservation_url.is_empty() {
        tracing::warn!(
            "no QUEUE_RESERVATION_URL: rooms never sell out and admit at the configured rate"
        );
        None
    } else {
        let client = reservation::Reservation::connect(
            &config.reservation_url,
            config.reservation_timeout(),
        )?;
        Some((client, config.targets()))
    };
    let admitter = config.admitter.then(|| {
        tokio::spawn(admitter::run(
            store.clone(),
            config.admission_tick(),
            config.admitter_limits(),
            metrics.rooms.clone(),
            reservation,
        ))
    });
    let router = kit::grpc::server(config.grpc.limits())
        .layer(metrics.grpc.layer())
        .add_service(health)
        .add_service(kit::grpc::reflection(&[
            ticketing_proto::FILE_DESCRIPTOR_SET,
        ])?)
        .add_service(QueueServiceServer::new(grpc::QueueGrpc::new(store)));
    let metrics_server = kit::metrics::serve(config.metrics_addr, registry).await?;
    let metrics_addr = metrics_server.addr();
    tracing::info!(%addr, %metrics_addr, "queue listening");
    let serve = async move {
        let result = router
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await;
        health_probe.abort();
        if let Some(admitter) = admitter {
            admitter.abort();
        }
        metrics_server.stop();
        result.map_err(anyhow::Error::from)
    };
    Ok(kit::metrics::Started {
        addr,
        metrics_addr,
        serve,
    })
}
