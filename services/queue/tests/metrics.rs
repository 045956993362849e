//! The queue's /metrics port with the real admitter on a real Redis: gRPC calls by method,
//! Redis latency per script, pool usage, and per room what the admitter admitted and dropped.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod support;

use std::time::{Duration, Instant};

use clap::Parser;
use ticketing_proto::queue::v1::{self as pb, queue_service_client::QueueServiceClient};

#[tokio::test]
async fn calls_latency_and_the_admitters_admissions_and_drops_show_per_room() {
    let redis = support::redis_url();
    // Three may be active at once; a fourth waits, never polls, and is dropped after 1 s.
    let config = queue::Config::parse_from([
        "queue",
        "--listen-addr=127.0.0.1:0",
        "--metrics-addr=127.0.0.1:0",
        &format!("--redis-url={redis}"),
        &format!("--key-prefix=test:{}", uuid::Uuid::new_v4().simple()),
        "--admission-rate=1000",
        "--active-cap=3",
        "--waiting-grace-secs=1",
        "--admission-tick-ms=20",
        // The pool, not the default multiplexed connection: its size is what the gauge shows.
        "--redis-multiplexed=false",
        "--redis-pool-size=8",
        "--reservation-url=",
    ]);
    let started = queue::start(config, std::future::pending()).await.unwrap();
    let metrics_addr = started.metrics_addr;
    tokio::spawn(started.serve);
    let mut client = QueueServiceClient::new(
        kit::grpc::channel(
            &format!("http://{}", started.addr),
            kit::grpc::ChannelTimeouts::default(),
        )
        .unwrap(),
    );
    for user in 1..=4 {
        client
            .issue_token(pb::IssueTokenRequest {
                user_id: user,
                concert_id: None,
            })
            .await
            .unwrap();
    }

    let room = |scraped: &kit::metrics::Exposition, name: &str| {
        scraped.sum(name, &[("room", "default")]).unwrap_or(0.0)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let scraped = loop {
        let scraped = kit::metrics::scrape(metrics_addr).await.unwrap();
        if room(&scraped, "queue_room_dropped_total") >= 1.0 || Instant::now() > deadline {
            break scraped;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(room(&scraped, "queue_room_admitted_total"), 3.0);
    assert_eq!(room(&scraped, "queue_room_dropped_total"), 1.0);
    assert_eq!(room(&scraped, "queue_room_expired_total"), 0.0);
    assert_eq!(room(&scraped, "queue_room_active"), 3.0);
    assert_eq!(room(&scraped, "queue_room_waiting"), 0.0);

    assert_eq!(
        scraped.sum(
            "grpc_server_requests_total",
            &[("method", "QueueService/IssueToken"), ("code", "OK")],
        ),
        Some(4.0)
    );
    assert_eq!(
        scraped.sum(
            "store_operation_duration_seconds_count",
            &[("store", "redis"), ("operation", "issue")],
        ),
        Some(4.0)
    );
    let admits = scraped
        .sum(
            "store_operation_duration_seconds_count",
            &[("operation", "admit")],
        )
        .unwrap_or(0.0);
    assert!(admits >= 2.0, "{admits} admission scripts timed");
    assert_eq!(
        scraped.sum(
            "store_pool_connections",
            &[("pool", "redis"), ("state", "max")],
        ),
        Some(8.0)
    );
}
