//! The reservation service: seat holds, bookings, wallets and payments on its own PostgreSQL
//! database. It asks the catalog (over gRPC) for seats and prices and never reads its tables.

pub mod concert_options;
pub mod config;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod hold_load;
pub mod metrics;
pub mod seat_prices;
pub mod store;
pub mod sweeper;
#[cfg(feature = "testing")]
pub mod testing;

use std::{future::Future, net::SocketAddr, time::Duration};

use ticketing_proto::reservation::v1::reservation_service_server::ReservationServiceServer;

pub use config::Config;

/// The migrations of this service's database, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Binds the gRPC server and returns its address and the future that serves until `shutdown`.
pub async fn build(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(SocketAddr, impl Future<Output = anyhow::Result<()>>)> {
    Ok(start(config, shutdown).await?.into_parts())
}

/// As [`build`], also saying where the metrics server listens.
pub async fn start(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<kit::metrics::Started<impl Future<Output = anyhow::Result<()>>>> {
    config.validate().map_err(anyhow::Error::msg)?;
    kit::postgres::ensure_database(&config.database_url).await;
    let pool = kit::postgres::pool(&config.database_url, config.pool_settings())?;
    MIGRATOR.run(&pool).await?;
    let mut registry = kit::metrics::Registry::default();
    let metrics = metrics::ReservationMetrics::register(&mut registry, &pool);
    let catalog = kit::grpc::channel(&config.catalog_url, config.catalog_timeouts())?;

    let (addr, incoming) = kit::grpc::bind(config.listen_addr).await?;
    let (reporter, health) = tonic_health::server::health_reporter();
    let probe_pool = pool.clone();
    let health_probe = kit::grpc::publish_health::<
        ReservationServiceServer<grpc::ReservationGrpc>,
        _,
        _,
    >(reporter, Duration::from_secs(2), move || {
        let pool = probe_pool.clone();
        async move { kit::postgres::answers(&pool).await }
    })
    .await;
    let sweep_every = Duration::from_millis(config.sweep_interval_ms);
    let (stop_sweeper, sweeper_stopped) = tokio::sync::oneshot::channel::<()>();
    let sweeper = tokio::spawn(sweeper::run(
        sweeper::Sweeper::new(
            pool.clone(),
            sweep_every,
            config.idempotency_retention_hours,
        ),
        sweep_every,
        async {
            let _ = sweeper_stopped.await;
        },
    ));
    let service = grpc::ReservationGrpc {
        pool,
        seat_prices: seat_prices::SeatPrices::new(
            catalog.clone(),
            config.catalog_timeouts().request,
        ),
        concert_options: concert_options::ConcertOptions::new(
            catalog,
            config.catalog_timeouts().request,
            config.concert_options_stale(),
        ),
        hold_load: hold_load::HoldLoad::new(metrics.holds_in_flight),
        hold: config.hold(),
        max_seats_per_user: config.max_seats_per_user,
        max_charge_minor: config.max_charge_minor,
        latency: metrics.store,
    };
    let router = kit::grpc::server(config.grpc.limits())
        .layer(metrics.grpc.layer())
        .add_service(health)
        .add_service(kit::grpc::reflection(&[
            ticketing_proto::FILE_DESCRIPTOR_SET,
        ])?)
        .add_service(ReservationServiceServer::new(service));
    let metrics_server = kit::metrics::serve(config.metrics_addr, registry).await?;
    let metrics_addr = metrics_server.addr();
    tracing::info!(%addr, %metrics_addr, "reservation listening");
    let serve = async move {
        let result = router
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await;
        health_probe.abort();
        // The sweeper gives its lease up, so another replica's takes over at once; if that
        // does not finish in time, the lease runs out by itself.
        let _ = stop_sweeper.send(());
        let mut sweeper = sweeper;
        if tokio::time::timeout(Duration::from_secs(2), &mut sweeper)
            .await
            .is_err()
        {
            sweeper.abort();
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
