//! The catalog service: concerts, options and seat maps on its own PostgreSQL database.

pub mod config;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod metrics;
pub mod repo;
pub mod seed;
#[cfg(feature = "testing")]
pub mod testing;

use std::{future::Future, net::SocketAddr, time::Duration};

use ticketing_proto::catalog::v1::catalog_service_server::CatalogServiceServer;

pub use config::Config;

/// The migrations of this service's database, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Creates the database if missing, migrates it and returns a pool on it.
pub async fn prepare_database(config: &Config) -> anyhow::Result<sqlx::PgPool> {
    config.validate().map_err(anyhow::Error::msg)?;
    kit::postgres::ensure_database(&config.database_url).await;
    let pool = kit::postgres::pool(&config.database_url, config.pool_settings())?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

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
    let pool = prepare_database(&config).await?;
    let mut registry = kit::metrics::Registry::default();
    let metrics = metrics::CatalogMetrics::register(&mut registry, &pool);
    let repo = repo::CatalogRepo::new(pool);
    let (addr, incoming) = kit::grpc::bind(config.listen_addr).await?;
    let (reporter, health) = tonic_health::server::health_reporter();
    let probe_pool = repo.pool().clone();
    let health_probe = kit::grpc::publish_health::<CatalogServiceServer<grpc::CatalogGrpc>, _, _>(
        reporter,
        Duration::from_secs(2),
        move || {
            let pool = probe_pool.clone();
            async move { kit::postgres::answers(&pool).await }
        },
    )
    .await;
    let router = kit::grpc::server(config.grpc.limits())
        .layer(metrics.grpc.layer())
        .add_service(health)
        .add_service(kit::grpc::reflection(&[
            ticketing_proto::FILE_DESCRIPTOR_SET,
        ])?)
        .add_service(CatalogServiceServer::new(grpc::CatalogGrpc::new(
            repo,
            metrics.store,
        )));
    let metrics_server = kit::metrics::serve(config.metrics_addr, registry).await?;
    let metrics_addr = metrics_server.addr();
    tracing::info!(%addr, %metrics_addr, "catalog listening");
    let serve = async move {
        let result = router
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await;
        health_probe.abort();
        metrics_server.stop();
        result.map_err(anyhow::Error::from)
    };
    Ok(kit::metrics::Started {
        addr,
        metrics_addr,
        serve,
    })
}
