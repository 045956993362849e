//! The browsing reads are answered from the gateway's memory for a bounded time: a seat held
//! through this gateway leaves its answers at once, one held through another replica within
//! the cache's bound (GATEWAY_READ_CACHE_MS plus one backend read).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use support::{Http, Reply, System, default_policy, start_gateway};

/// The bound this test holds the cache to, and the cache's own setting in it.
const BOUND: Duration = Duration::from_secs(1);
const CACHE_MS: &str = "--read-cache-ms=300";

fn reserve_body(token: &str, option: i64, seat: i64, user: i64) -> String {
    format!(
        r#"{{"token": "{token}", "concertOptionId": {option}, "seatId": {seat}, "userId": {user}}}"#
    )
}

fn seat_ids(reply: &Reply) -> Vec<i64> {
    reply
        .json
        .as_array()
        .expect("a bare JSON array")
        .iter()
        .map(|v| v["id"].as_i64().expect("id"))
        .collect()
}

fn available(options: &Reply, option: i64) -> i64 {
    options
        .json
        .as_array()
        .expect("a bare JSON array")
        .iter()
        .find(|o| o["id"] == option)
        .and_then(|o| o["availableSeats"].as_i64())
        .expect("the option is listed")
}

#[tokio::test]
async fn a_seat_held_through_this_gateway_leaves_its_free_seats_and_counts_at_once() {
    let system = System::start_with(default_policy(), &["--read-cache-ms=60000"]).await;
    let (user, token) = system.active_tokens([7001]).await.remove(0);
    let http = &system.http;
    // Both answers are now kept for a minute.
    assert!(seat_ids(&http.get("/api/concert/1/available-seats").await).contains(&3));
    let options = "/api/concert/concert/1/available-concert-options";
    assert_eq!(available(&http.get(options).await, 1), 50);
    let dates = "/api/concert/1/available-dates";
    assert_eq!(available(&http.get(dates).await, 1), 50);

    let held = http
        .post("/api/reserve", &reserve_body(&token, 1, 3, user))
        .await;
    assert_eq!(held.status, 303, "{}", held.json);

    assert!(!seat_ids(&http.get("/api/concert/1/available-seats").await).contains(&3));
    assert_eq!(available(&http.get(options).await, 1), 49);
    assert_eq!(available(&http.get(dates).await, 1), 49);
}

#[tokio::test]
async fn a_seat_held_through_another_gateway_leaves_available_seats_within_the_bound() {
    let system = System::start_with(default_policy(), &[CACHE_MS]).await;
    let other = Http::new(
        start_gateway(
            &system.queue_url,
            &[
                &format!("--catalog-url={}", system.catalog_url.as_deref().unwrap()),
                &format!(
                    "--reservation-url={}",
                    system.reservation_url.as_deref().unwrap()
                ),
                CACHE_MS,
            ],
        )
        .await,
    );
    let (user, token) = system.active_tokens([7002]).await.remove(0);
    assert!(seat_ids(&system.http.get("/api/concert/1/available-seats").await).contains(&9));

    let held = other
        .post("/api/reserve", &reserve_body(&token, 1, 9, user))
        .await;
    assert_eq!(held.status, 303, "{}", held.json);
    let since_hold = Instant::now();

    // Read through the first gateway until the seat is gone; it must be gone within the bound.
    loop {
        let seats = seat_ids(&system.http.get("/api/concert/1/available-seats").await);
        if !seats.contains(&9) {
            break;
        }
        assert!(
            since_hold.elapsed() <= BOUND,
            "seat 9 was still shown free {:?} after its hold",
            since_hold.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(since_hold.elapsed() <= BOUND);
}

#[tokio::test]
async fn with_the_cache_off_every_read_sees_a_hold_made_elsewhere_at_once() {
    let system = System::start_with(default_policy(), &["--read-cache-ms=0"]).await;
    let other = Http::new(
        start_gateway(
            &system.queue_url,
            &[
                &format!("--catalog-url={}", system.catalog_url.as_deref().unwrap()),
                &format!(
                    "--reservation-url={}",
                    system.reservation_url.as_deref().unwrap()
                ),
                "--read-cache-ms=0",
            ],
        )
        .await,
    );
    let (user, token) = system.active_tokens([7003]).await.remove(0);
    assert!(seat_ids(&system.http.get("/api/concert/1/available-seats").await).contains(&11));
    let held = other
        .post("/api/reserve", &reserve_body(&token, 1, 11, user))
        .await;
    assert_eq!(held.status, 303, "{}", held.json);
    assert!(!seat_ids(&system.http.get("/api/concert/1/available-seats").await).contains(&11));
}
