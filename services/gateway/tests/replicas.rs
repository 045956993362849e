//! The gateway in front of several replicas of a backend (RESERVATION_URL lists them): calls
//! are balanced per request over the replicas, a stopped replica costs no new request, and a
//! call cut off on its way is sent again only when it is idempotent.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod support;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use support::{System, default_policy, start_gateway};

/// GetBalance calls a replica has served, from its own metrics.
async fn balance_calls(metrics_addr: SocketAddr) -> f64 {
    kit::metrics::scrape(metrics_addr)
        .await
        .expect("scrape")
        .sum(
            "grpc_server_requests_total",
            &[("method", "ReservationService/GetBalance")],
        )
        .unwrap_or(0.0)
}

#[tokio::test]
async fn both_reservation_replicas_serve_the_gateways_calls() {
    let (system, replicas) = System::start_with_reservation_replicas(default_policy(), 2).await;
    for user in 1..=40 {
        let reply = system.http.get(&format!("/api/users/{user}/balance")).await;
        assert_eq!(reply.status, 200, "{}", reply.json);
    }
    let a = balance_calls(replicas[0].metrics_addr).await;
    let b = balance_calls(replicas[1].metrics_addr).await;
    assert_eq!(a + b, 40.0);
    assert!(a > 0.0 && b > 0.0, "per replica: {a} / {b}");
}

#[tokio::test]
async fn after_a_reservation_replica_stops_every_new_request_succeeds() {
    let (system, mut replicas) = System::start_with_reservation_replicas(default_policy(), 2).await;
    let users: Vec<i64> = (1..=12).collect();
    let tokens = system.active_tokens(users.clone()).await;
    // Both serve before one stops.
    for user in &users {
        let reply = system.http.get(&format!("/api/users/{user}/balance")).await;
        assert_eq!(reply.status, 200, "{}", reply.json);
    }
    replicas.remove(0).stop().await;

    // New requests, writes without an Idempotency-Key among them: hold, charge, pay.
    for (n, (user, token)) in tokens.iter().enumerate() {
        let hold = system
            .http
            .post(
                "/api/reserve",
                &format!(
                    r#"{{"token": "{token}", "concertOptionId": 1, "seatId": {}, "userId": {user}}}"#,
                    n + 1
                ),
            )
            .await;
        assert_eq!(hold.status, 303, "{}", hold.json);
        let charge = system
            .http
            .post(
                &format!("/api/users/{user}/balance/charge"),
                r#"{"amount": 500000}"#,
            )
            .await;
        assert_eq!(charge.status, 200, "{}", charge.json);
        let pay = system
            .http
            .post(
                "/api/payments",
                &format!(
                    r#"{{"reservationId": {}, "userId": {user}, "token": "{token}"}}"#,
                    hold.json["reservationId"]
                ),
            )
            .await;
        assert_eq!(pay.status, 200, "{}", pay.json);
        let balance = system.http.get(&format!("/api/users/{user}/balance")).await;
        assert_eq!(balance.status, 200, "{}", balance.json);
    }
}

/// A server that reads each call and drops the connection without answering, as a replica
/// killed mid-call does; counts the calls it read.
async fn cut_off_every_call() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let read = calls.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let read = read.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut bytes = vec![0u8; 4096];
                // The client preface and the call's frames come in the first read.
                if socket.read(&mut bytes).await.is_ok_and(|n| n > 0) {
                    read.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    (url, calls)
}

#[tokio::test]
async fn a_charge_cut_off_on_its_way_is_sent_again_only_with_an_idempotency_key() {
    let system = System::start_queue_only(default_policy()).await;
    let (cutter, calls) = cut_off_every_call().await;
    let gateway = support::Http::new(
        start_gateway(&system.queue_url, &[&format!("--reservation-url={cutter}")]).await,
    );

    let unkeyed = gateway
        .post("/api/users/7/balance/charge", r#"{"amount": 100}"#)
        .await;
    assert_eq!(unkeyed.status, 503, "{}", unkeyed.json);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "sent once");

    let keyed = gateway
        .post_with(
            "/api/users/7/balance/charge",
            r#"{"amount": 100}"#,
            &[("idempotency-key", "charge-7-1")],
        )
        .await;
    assert_eq!(keyed.status, 503, "{}", keyed.json);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1 + kit::grpc::retry::MAX_ATTEMPTS as usize,
        "sent again until the attempts ran out"
    );
}

#[tokio::test]
async fn a_keyed_charge_cut_off_on_one_replica_is_completed_once_on_another() {
    let system = System::start(default_policy()).await;
    let (cutter, cut) = cut_off_every_call().await;
    let real = system.reservation_url.clone().expect("reservation");
    let gateway = support::Http::new(
        start_gateway(
            &system.queue_url,
            &[&format!("--reservation-url={cutter},{real}")],
        )
        .await,
    );
    // Charges until one has been cut off (the balancer picks either replica at first), and a
    // few more.
    let mut charges = 0;
    while cut.load(Ordering::SeqCst) == 0 || charges < 10 {
        assert!(charges < 100, "the cutting replica was never picked");
        charges += 1;
        let key = format!("charge-8-{charges}");
        let reply = gateway
            .post_with(
                "/api/users/8/balance/charge",
                r#"{"amount": 100}"#,
                &[("idempotency-key", &key)],
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.json);
    }
    let balance = gateway.get("/api/users/8/balance").await;
    assert_eq!(
        balance.json["balance"],
        charges * 100,
        "each charge counted once"
    );
}
