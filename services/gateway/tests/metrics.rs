//! The metrics of a started system (queue with its admitter, catalog, reservation, gateway,
//! each on port 0 with metrics on port 0) after a fan's real journey through the gateway:
//! route series carry templates, never raw paths; and every metric the Grafana dashboard
//! (deploy/monitoring) queries is one the services export, as is every name in
//! deploy/monitoring/exported-metrics.txt, which deploy/k8s/validate checks the dashboard
//! against.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use clap::Parser;
use kit::{http_client::HttpClient, metrics::Exposition};

#[derive(Parser)]
struct CatalogArgs {
    #[command(flatten)]
    config: catalog::Config,
}

fn postgres() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn redis() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The four services; returns the gateway's address and every metrics address.
async fn start_system() -> (SocketAddr, [SocketAddr; 4]) {
    let queue = queue::start(
        queue::Config::parse_from([
            "queue",
            "--listen-addr=127.0.0.1:0",
            "--metrics-addr=127.0.0.1:0",
            &format!("--redis-url={}", redis()),
            &format!("--key-prefix=test:{}", uuid::Uuid::new_v4().simple()),
            "--admission-rate=1000",
            "--admission-tick-ms=20",
            // Started before the reservation service: the configured rate, no outlook.
            "--reservation-url=",
        ]),
        std::future::pending(),
    )
    .await
    .unwrap();
    let catalog_db = kit::postgres::fresh_database(&postgres()).await.unwrap();
    let catalog_config = CatalogArgs::parse_from([
        "catalog",
        "--listen-addr=127.0.0.1:0",
        "--metrics-addr=127.0.0.1:0",
        &format!("--database-url={catalog_db}"),
        "--db-pool-size=4",
    ])
    .config;
    let pool = catalog::prepare_database(&catalog_config).await.unwrap();
    let seed = catalog::seed::SeedArgs {
        concerts: 1,
        options_per_concert: 1,
        seats_per_option: 10,
    };
    catalog::seed::seed(&pool, seed).await.unwrap();
    let catalog = catalog::start(catalog_config, std::future::pending())
        .await
        .unwrap();
    let reservation_db = kit::postgres::fresh_database(&postgres()).await.unwrap();
    let reservation = reservation::start(
        reservation::Config::parse_from([
            "reservation",
            "--listen-addr=127.0.0.1:0",
            "--metrics-addr=127.0.0.1:0",
            &format!("--database-url={reservation_db}"),
            &format!("--catalog-url=http://{}", catalog.addr),
            "--db-pool-size=4",
        ]),
        std::future::pending(),
    )
    .await
    .unwrap();
    let gateway = gateway::start(
        gateway::Config::parse_from([
            "gateway".to_owned(),
            "--listen-addr=127.0.0.1:0".to_owned(),
            "--metrics-addr=127.0.0.1:0".to_owned(),
            "--auth=trusted".to_owned(),
            // One test client is one address: its flood at the end is refused with 429.
            "--rate-limit-by-address=true".to_owned(),
            format!("--queue-url=http://{}", queue.addr),
            format!("--catalog-url=http://{}", catalog.addr),
            format!("--reservation-url=http://{}", reservation.addr),
        ]),
        std::future::pending(),
    )
    .await
    .unwrap();
    let metrics = [
        gateway.metrics_addr,
        queue.metrics_addr,
        catalog.metrics_addr,
        reservation.metrics_addr,
    ];
    let gateway_addr = gateway.addr;
    tokio::spawn(queue.serve);
    tokio::spawn(catalog.serve);
    tokio::spawn(reservation.serve);
    tokio::spawn(gateway.serve);
    (gateway_addr, metrics)
}

/// Join, get admitted, hold a seat, top up, pay; then one caller over its rate (429).
async fn a_fans_journey(http: &HttpClient) {
    let issued = http
        .post("/queue/issue-token")
        .json(r#"{"userId": 1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(issued.status, 200, "{}", issued.text());
    let token = issued.json()["token"].as_str().unwrap().to_owned();
    // The real admitter admits within a few ticks; until then the hold is 403 TOKEN_NOT_ACTIVE.
    let deadline = Instant::now() + Duration::from_secs(10);
    let hold = loop {
        let hold = http
            .post("/api/reserve")
            .json(format!(
                r#"{{"token": "{token}", "concertOptionId": 1, "seatId": 1, "userId": 1}}"#
            ))
            .send()
            .await
            .unwrap();
        if hold.status != 403 || Instant::now() > deadline {
            break hold;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(hold.status, 303, "{}", hold.text());
    let reservation_id = hold.json()["reservationId"].as_i64().unwrap();
    let charged = http
        .post("/api/users/1/balance/charge")
        .json(r#"{"amount": 1000000}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(charged.status, 200, "{}", charged.text());
    let paid = http
        .post("/api/payments")
        .json(format!(
            r#"{{"reservationId": {reservation_id}, "userId": 1, "token": "{token}"}}"#
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status, 200, "{}", paid.text());
    let concerts = http
        .get("/api/concert/1/available-dates")
        .send()
        .await
        .unwrap();
    assert!(concerts.status < 500, "{}", concerts.text());
    assert_eq!(
        http.get("/no/such/route/42").send().await.unwrap().status,
        404
    );
    // The default limit is 20 per second with a burst of 40 per address: the flood goes over.
    let mut limited = false;
    for _ in 0..80 {
        let reply = http
            .post("/queue/issue-token")
            .json(r#"{"userId": 2}"#)
            .send()
            .await
            .unwrap();
        if reply.status == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "user 2 was never rate limited");
}

async fn scrape_all(metrics: &[SocketAddr]) -> Vec<Exposition> {
    let mut out = Vec::new();
    for addr in metrics {
        out.push(kit::metrics::scrape(*addr).await.unwrap());
    }
    out
}

#[tokio::test]
async fn gateway_routes_are_counted_by_template_and_status_never_by_raw_path() {
    let (gateway, metrics) = start_system().await;
    let http = HttpClient::for_addr(gateway);
    a_fans_journey(&http).await;
    let scraped = kit::metrics::scrape(metrics[0]).await.unwrap();
    let requests = |route: &str, method: &str, status: &str| {
        scraped.sum(
            "http_server_requests_total",
            &[("route", route), ("method", method), ("status", status)],
        )
    };
    assert_eq!(
        requests("/queue/issue-token", "POST", "200").map(|n| n >= 2.0),
        Some(true)
    );
    assert_eq!(requests("/queue/issue-token", "POST", "429"), Some(1.0));
    assert_eq!(requests("/api/reserve", "POST", "303"), Some(1.0));
    assert_eq!(requests("/api/payments", "POST", "200"), Some(1.0));
    assert_eq!(
        requests("/api/users/{user_id}/balance/charge", "POST", "200"),
        Some(1.0)
    );
    assert!(
        scraped
            .matching(
                "http_server_requests_total",
                &[("route", "/api/concert/{id}/available-dates")]
            )
            .count()
            == 1
    );
    assert_eq!(requests("unmatched", "GET", "404"), Some(1.0));
    let raw: Vec<&str> = scraped
        .samples
        .iter()
        .flat_map(|s| s.labels.iter())
        .filter(|(k, _)| k == "route")
        .map(|(_, v)| v.as_str())
        .filter(|v| v.contains("/1/") || v.contains("/42"))
        .collect();
    assert!(raw.is_empty(), "raw paths as labels: {raw:?}");
    assert_eq!(
        scraped.sum("http_server_rejected_total", &[("reason", "rate_limited")]),
        Some(1.0)
    );
    assert_eq!(
        scraped.sum(
            "http_server_request_duration_seconds_count",
            &[("route", "/api/payments"), ("method", "POST")],
        ),
        Some(1.0)
    );
}

fn deploy_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/monitoring")
        .join(path)
}

/// The metric names a PromQL expression selects: every identifier directly followed by `{` or
/// `[` (the dashboard writes every selector so; deploy/monitoring/check.py enforces it).
fn selected_metrics(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut start = None;
    for (i, &b) in bytes.iter().enumerate() {
        let ident = b.is_ascii_alphanumeric() || b == b'_' || b == b':';
        match (start, ident) {
            (None, true) if !b.is_ascii_digit() && (i == 0 || bytes[i - 1] != b'$') => {
                start = Some(i)
            }
            (Some(s), false) => {
                if b == b'{' || b == b'[' {
                    names.insert(expr[s..i].to_owned());
                }
                start = None;
            }
            _ => {}
        }
    }
    names
}

#[tokio::test]
async fn every_metric_the_dashboard_queries_is_exported_by_a_started_system() {
    let (gateway, metrics) = start_system().await;
    a_fans_journey(&HttpClient::for_addr(gateway)).await;
    let exported: BTreeSet<String> = scrape_all(&metrics)
        .await
        .iter()
        .flat_map(Exposition::names)
        .collect();

    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(deploy_file("grafana/ticketing.json")).unwrap(),
    )
    .unwrap();
    let mut queried = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            let names = selected_metrics(expr);
            assert!(!names.is_empty(), "{expr} selects no metric");
            queried.extend(names);
        }
    }
    let missing: Vec<&String> = queried.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries {missing:?}, which nothing exports"
    );

    // The list validate checks the dashboard against: exactly what the system exports.
    let listed: BTreeSet<String> = std::fs::read_to_string(deploy_file("exported-metrics.txt"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        listed, exported,
        "deploy/monitoring/exported-metrics.txt is not what the services export"
    );
}

#[test]
fn dashboard_selectors_are_read_from_promql() {
    let names = selected_metrics(
        r#"histogram_quantile(0.99, sum by (le, route) (rate(http_server_request_duration_seconds_bucket{job="gateway"}[$__rate_interval])))"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["http_server_request_duration_seconds_bucket"]
    );
    let names = selected_metrics("sum(store_pool_connections{state=\"open\"}) - sum(x_total[5m])");
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["store_pool_connections", "x_total"]
    );
}
