//! The reservation service's /metrics port after real holds and payments: holds and payments
//! by outcome, store call latency, gRPC calls, pool usage.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

use clap::Parser;
use ticketing_proto::reservation::v1::{
    self as pb, reservation_service_client::ReservationServiceClient,
};

fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

#[tokio::test]
async fn holds_and_payments_by_outcome_and_store_latency_show_on_the_metrics_port() {
    let seed = catalog::seed::SeedArgs {
        concerts: 1,
        options_per_concert: 1,
        seats_per_option: 10,
    };
    let (catalog_addr, _) = catalog::testing::spawn_seeded(&server_url(), seed)
        .await
        .unwrap();
    let database = kit::postgres::fresh_database(&server_url()).await.unwrap();
    let config = reservation::Config::parse_from([
        "reservation",
        "--listen-addr=127.0.0.1:0",
        "--metrics-addr=127.0.0.1:0",
        &format!("--database-url={database}"),
        &format!("--catalog-url=http://{catalog_addr}"),
        "--db-pool-size=4",
    ]);
    let started = reservation::start(config, std::future::pending())
        .await
        .unwrap();
    let metrics_addr = started.metrics_addr;
    tokio::spawn(started.serve);
    let mut client = ReservationServiceClient::new(
        kit::grpc::channel(
            &format!("http://{}", started.addr),
            kit::grpc::ChannelTimeouts::default(),
        )
        .unwrap(),
    );
    let default_room = Some(pb::Room { concert_id: None });
    let hold = |user_id| pb::HoldSeatRequest {
        user_id,
        concert_option_id: 1,
        seat_no: 1,
        idempotency_key: None,
        admitted_by: default_room,
    };
    let held = client.hold_seat(hold(1)).await.unwrap().into_inner();
    let taken = client.hold_seat(hold(2)).await.unwrap_err();
    assert_eq!(kit::error_code::of(&taken), Some("SEAT_TAKEN"));
    client
        .charge_wallet(pb::ChargeWalletRequest {
            user_id: 1,
            amount_minor: 1_000_000,
            idempotency_key: None,
        })
        .await
        .unwrap();
    let pay = pb::PayRequest {
        reservation_id: held.id,
        user_id: 1,
        idempotency_key: None,
        replay_only: false,
        admitted_by: default_room,
    };
    client.pay(pay.clone()).await.unwrap();
    let again = client.pay(pay).await.unwrap_err();
    assert_eq!(kit::error_code::of(&again), Some("ALREADY_PAID"));

    let scraped = kit::metrics::scrape(metrics_addr).await.unwrap();
    let holds = |outcome| scraped.sum("reservation_holds_total", &[("outcome", outcome)]);
    let payments = |outcome| scraped.sum("reservation_payments_total", &[("outcome", outcome)]);
    assert_eq!(holds("held"), Some(1.0));
    assert_eq!(holds("seat_taken"), Some(1.0));
    assert_eq!(payments("paid"), Some(1.0));
    assert_eq!(payments("already_paid"), Some(1.0));
    assert_eq!(payments("insufficient_balance"), None);
    let store_calls = |operation| {
        scraped.sum(
            "store_operation_duration_seconds_count",
            &[("store", "postgres"), ("operation", operation)],
        )
    };
    assert_eq!(store_calls("hold"), Some(2.0));
    assert_eq!(store_calls("pay"), Some(2.0));
    assert_eq!(store_calls("charge"), Some(1.0));
    assert_eq!(
        scraped.sum(
            "grpc_server_requests_total",
            &[
                ("method", "ReservationService/HoldSeat"),
                ("code", "ALREADY_EXISTS"),
                ("error", "SEAT_TAKEN"),
            ],
        ),
        Some(1.0)
    );
    assert_eq!(
        scraped.sum(
            "store_pool_connections",
            &[("pool", "postgres"), ("state", "max")],
        ),
        Some(4.0)
    );
}
