//! The catalog's /metrics port after real calls: gRPC calls by method and status, repository
//! read latency, pool usage.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

use clap::Parser;
use ticketing_proto::catalog::v1::{self as pb, catalog_service_client::CatalogServiceClient};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    config: catalog::Config,
}

#[tokio::test]
async fn calls_reads_and_pool_show_on_the_metrics_port() {
    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let database_url = kit::postgres::fresh_database(&server).await.unwrap();
    let config = Args::parse_from([
        "catalog",
        "--listen-addr=127.0.0.1:0",
        "--metrics-addr=127.0.0.1:0",
        &format!("--database-url={database_url}"),
        "--db-pool-size=3",
    ])
    .config;
    let started = catalog::start(config, std::future::pending())
        .await
        .unwrap();
    let metrics_addr = started.metrics_addr;
    tokio::spawn(started.serve);
    let mut client = CatalogServiceClient::new(
        kit::grpc::channel(
            &format!("http://{}", started.addr),
            kit::grpc::ChannelTimeouts::default(),
        )
        .unwrap(),
    );
    for _ in 0..3 {
        client
            .list_concerts(pb::ListConcertsRequest {})
            .await
            .unwrap();
    }
    let missing = client
        .get_concert(pb::GetConcertRequest { concert_id: 999 })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);

    let scraped = kit::metrics::scrape(metrics_addr).await.unwrap();
    let calls = |method: &str, code: &str| {
        scraped.sum(
            "grpc_server_requests_total",
            &[("method", method), ("code", code)],
        )
    };
    assert_eq!(calls("CatalogService/ListConcerts", "OK"), Some(3.0));
    assert_eq!(
        scraped.sum(
            "grpc_server_requests_total",
            &[
                ("method", "CatalogService/GetConcert"),
                ("code", "NOT_FOUND"),
                ("error", "CONCERT_NOT_FOUND"),
            ],
        ),
        Some(1.0)
    );
    assert_eq!(calls("CatalogService/GetConcert", "OK"), None);
    assert_eq!(
        scraped.sum(
            "grpc_server_request_duration_seconds_count",
            &[("method", "CatalogService/ListConcerts")],
        ),
        Some(3.0)
    );
    assert_eq!(
        scraped.sum(
            "store_operation_duration_seconds_count",
            &[("store", "postgres"), ("operation", "concerts")],
        ),
        Some(3.0)
    );
    assert_eq!(
        scraped.sum(
            "store_operation_duration_seconds_count",
            &[("operation", "concert")],
        ),
        Some(1.0)
    );
    assert_eq!(
        scraped.sum(
            "store_pool_connections",
            &[("pool", "postgres"), ("state", "max")],
        ),
        Some(3.0)
    );
    let open = scraped
        .sum(
            "store_pool_connections",
            &[("pool", "postgres"), ("state", "open")],
        )
        .unwrap();
    assert!((1.0..=3.0).contains(&open), "{open} connections open");
}
