//! Gateways sharing one listen port (GATEWAY_REUSE_PORT, as `cargo xtask up --replicas N`
//! runs them): both start, and the kernel spreads new connections over both.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod support;

use std::net::SocketAddr;

use clap::Parser;
use kit::http_client::{HttpClient, Options};
use support::NO_BACKEND;

async fn gateway(listen: SocketAddr, reuse_port: bool) -> anyhow::Result<(SocketAddr, SocketAddr)> {
    let config = gateway::Config::parse_from([
        "gateway".to_owned(),
        "--auth=trusted".to_owned(),
        format!("--listen-addr={listen}"),
        "--metrics-addr=127.0.0.1:0".to_owned(),
        format!("--reuse-port={reuse_port}"),
        format!("--queue-url={NO_BACKEND}"),
        format!("--catalog-url={NO_BACKEND}"),
        format!("--reservation-url={NO_BACKEND}"),
    ]);
    let started = gateway::start(config, std::future::pending()).await?;
    let addrs = (started.addr, started.metrics_addr);
    tokio::spawn(started.serve);
    Ok(addrs)
}

/// `GET /healthz` answers this gateway has served, from its own metrics.
async fn served(metrics: SocketAddr) -> f64 {
    kit::metrics::scrape(metrics)
        .await
        .expect("scrape")
        .sum("http_server_requests_total", &[("route", "/healthz")])
        .unwrap_or(0.0)
}

#[tokio::test]
async fn two_gateways_with_reuse_port_share_one_port_and_both_answer() {
    let (addr, first) = gateway("127.0.0.1:0".parse().unwrap(), true)
        .await
        .expect("first gateway");
    let (same, second) = gateway(addr, true)
        .await
        .expect("second gateway on the same port");
    assert_eq!(same, addr);
    // A new connection per request, as many clients make: the kernel picks a listener for each.
    let client = HttpClient::with_options(
        &format!("http://{addr}"),
        Options {
            pool_max_idle_per_host: 0,
            ..Options::default()
        },
    );
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while served(first).await == 0.0 || served(second).await == 0.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "one gateway got no connection"
        );
        let reply = client.get("/healthz").send().await.expect("answer");
        assert_eq!(reply.status, 200);
    }
}

#[tokio::test]
async fn without_reuse_port_a_second_gateway_on_a_taken_port_fails_to_start() {
    let (addr, _) = gateway("127.0.0.1:0".parse().unwrap(), false)
        .await
        .expect("first gateway");
    assert!(gateway(addr, false).await.is_err());
}
