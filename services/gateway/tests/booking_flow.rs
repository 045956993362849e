//! The whole booking flow through the gateway's HTTP API, against real servers on port 0, a
//! real Redis and a fresh PostgreSQL database per service per test.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod support;

use std::collections::HashSet;

use serde_json::Value;
use support::{Reply, System, assert_error, default_policy};

fn reserve_body(token: &str, option: i64, seat: i64, user: i64) -> String {
    format!(
        r#"{{"token": "{token}", "concertOptionId": {option}, "seatId": {seat}, "userId": {user}}}"#
    )
}

fn pay_body(token: &str, reservation: i64, user: i64) -> String {
    format!(r#"{{"token": "{token}", "reservationId": {reservation}, "userId": {user}}}"#)
}

fn ids(reply: &Reply) -> Vec<i64> {
    reply
        .json
        .as_array()
        .expect("a bare JSON array")
        .iter()
        .map(|v| v["id"].as_i64().expect("id"))
        .collect()
}

#[tokio::test]
async fn a_person_goes_from_the_queue_to_a_paid_seat() {
    let system = System::start(default_policy()).await;
    let http = &system.http;
    let (user, token) = system.active_tokens([42]).await.remove(0);
    let active = http.get(&format!("/queue/check-queue?token={token}")).await;
    assert_eq!(active.json["status"], "ACTIVE");

    let concerts = http.get("/api/concert/get-concerts").await;
    assert_eq!(ids(&concerts), vec![1]);
    let dates = http.get("/api/concert/1/available-dates").await;
    assert_eq!(ids(&dates), (1..=10).collect::<Vec<_>>());
    assert!(
        dates
            .json
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["availableSeats"] == 50 && o["concertId"] == 1)
    );
    let seats = http.get("/api/concert/1/available-seats").await;
    assert_eq!(ids(&seats), (1..=50).collect::<Vec<_>>());
    assert_eq!(seats.json[0]["grade"], "VIP");
    let price = seats.json[0]["price"].as_i64().unwrap();

    let reserved = http
        .post("/api/reserve", &reserve_body(&token, 1, 1, user))
        .await;
    assert_eq!(reserved.status, 303, "{}", reserved.json);
    assert!(
        !reserved.location,
        "the original clients rely on a 303 without Location"
    );
    assert_eq!(reserved.json["status"], "HELD");
    assert_eq!(reserved.json["price"], price);
    assert!(reserved.json["expiresAt"].as_str().is_some());
    let reservation_id = reserved.json["reservationId"].as_i64().unwrap();

    let seats = http.get("/api/concert/1/available-seats").await;
    assert_eq!(ids(&seats), (2..=50).collect::<Vec<_>>());
    let options = http
        .get("/api/concert/concert/1/available-concert-options")
        .await;
    assert_eq!(options.json[0]["availableSeats"], 49);

    let poor = http
        .post("/api/payments", &pay_body(&token, reservation_id, user))
        .await;
    assert_error(&poor, 400, "INSUFFICIENT_BALANCE");

    let charged = http
        .post(
            &format!("/api/users/{user}/balance/charge"),
            r#"{"amount": 200000}"#,
        )
        .await;
    assert_eq!(
        (charged.status, &charged.json["balance"]),
        (200, &Value::from(200_000))
    );
    let paid = http
        .post("/api/payments", &pay_body(&token, reservation_id, user))
        .await;
    assert_eq!(paid.status, 200, "{}", paid.json);
    assert_eq!(paid.json["amount"], price);
    assert_eq!(paid.json["balance"], 200_000 - price);

    let balance = http.get(&format!("/api/users/{user}/balance")).await;
    assert_eq!(
        balance.json,
        serde_json::json!({"userId": user, "balance": 200_000 - price})
    );
    let reservation = http
        .get(&format!("/api/reservations/{reservation_id}"))
        .await;
    assert_eq!(reservation.json["status"], "CONFIRMED");
    assert_eq!(
        ids(&http.get("/api/concert/1/available-seats").await),
        (2..=50).collect::<Vec<_>>()
    );
    // The token was released: the slot went to the next waiter.
    assert_error(
        &http.get(&format!("/queue/check-queue?token={token}")).await,
        401,
        "TOKEN_NOT_FOUND",
    );
    assert_error(
        &http
            .post("/api/payments", &pay_body(&token, reservation_id, user))
            .await,
        401,
        "TOKEN_NOT_FOUND",
    );
}

#[tokio::test]
async fn reserve_and_pay_need_an_active_token_of_the_same_user() {
    let system = System::start(default_policy()).await;
    let http = &system.http;
    let (owner, token) = system.active_tokens([1]).await.remove(0);
    let waiting = http.post("/queue/issue-token", r#"{"userId": 2}"#).await;
    let waiting_token = waiting.json["token"].as_str().unwrap().to_owned();
    assert_eq!(waiting.json["status"], "WAITING");

    let cases = [
        (reserve_body("", 1, 1, owner), 401, "TOKEN_MISSING"),
        (
            reserve_body("not-a-token", 1, 1, owner),
            401,
            "TOKEN_NOT_FOUND",
        ),
        (
            reserve_body(&uuid::Uuid::new_v4().to_string(), 1, 1, owner),
            401,
            "TOKEN_NOT_FOUND",
        ),
        (
            reserve_body(&waiting_token, 1, 1, 2),
            403,
            "TOKEN_NOT_ACTIVE",
        ),
        (reserve_body(&token, 1, 1, 2), 403, "TOKEN_USER_MISMATCH"),
        (
            reserve_body(&waiting_token, 1, 1, owner),
            403,
            "TOKEN_USER_MISMATCH",
        ),
        (
            r#"{"concertOptionId": 1, "seatId": 1, "userId": 1}"#.to_owned(),
            401,
            "TOKEN_MISSING",
        ),
    ];
    for (body, status, code) in &cases {
        assert_error(&http.post("/api/reserve", body).await, *status, code);
    }
    assert_error(
        &http.post("/api/payments", &pay_body(&token, 1, 2)).await,
        403,
        "TOKEN_USER_MISMATCH",
    );

    // Past its active time the token no longer opens anything.
    system.advance(600_001);
    assert_error(
        &http
            .post("/api/reserve", &reserve_body(&token, 1, 1, owner))
            .await,
        401,
        "TOKEN_EXPIRED",
    );
    // Nothing was held by any of it.
    assert_eq!(
        http.get("/api/concert/1/available-seats")
            .await
            .json
            .as_array()
            .unwrap()
            .len(),
        50
    );
}

#[tokio::test]
async fn two_hundred_concurrent_holds_on_one_seat_have_exactly_one_winner_fifty_times() {
    let system = System::start_without_seat_limit(default_policy()).await;
    let tokens = system.active_tokens(1..=200).await;
    for round in 0..50_i64 {
        let (option, seat) = (round / 10 + 1, round % 10 + 1);
        let bodies: Vec<String> = tokens
            .iter()
            .map(|(user, token)| reserve_body(token, option, seat, *user))
            .collect();
        let replies = futures::future::join_all(
            bodies
                .iter()
                .map(|body| system.http.post("/api/reserve", body)),
        )
        .await;
        let winners: Vec<&Reply> = replies.iter().filter(|r| r.status == 303).collect();
        assert_eq!(winners.len(), 1, "round {round}: {} winners", winners.len());
        for loser in replies.iter().filter(|r| r.status != 303) {
            assert_error(loser, 400, "SEAT_TAKEN");
        }
        let winner = winners[0].json["reservationId"].as_i64().unwrap();
        let stored = system
            .http
            .get(&format!("/api/reservations/{winner}"))
            .await;
        assert_eq!(
            (
                stored.json["status"].as_str(),
                stored.json["seatId"].as_i64()
            ),
            (Some("HELD"), Some(seat))
        );
    }
    let (holds,): (i64,) = sqlx::query_as("select count(*) from reservations")
        .fetch_one(system.reservation_db())
        .await
        .unwrap();
    assert_eq!(holds, 50, "no second reservation was written for any seat");
}

#[tokio::test]
async fn an_expired_hold_frees_its_seat_exactly_once_and_a_paid_one_never() {
    let system = System::start(default_policy()).await;
    let tokens = system.active_tokens(1..=51).await;
    let (first_user, first_token) = &tokens[0];
    let (payer, payer_token) = &tokens[1];
    let held = system
        .http
        .post(
            "/api/reserve",
            &reserve_body(first_token, 1, 1, *first_user),
        )
        .await;
    assert_eq!(held.status, 303);
    let expired_id = held.json["reservationId"].as_i64().unwrap();
    system
        .http
        .post(
            &format!("/api/users/{payer}/balance/charge"),
            r#"{"amount": 150000}"#,
        )
        .await;
    let sold = system
        .http
        .post("/api/reserve", &reserve_body(payer_token, 1, 2, *payer))
        .await;
    let sold_id = sold.json["reservationId"].as_i64().unwrap();
    assert_eq!(
        system
            .http
            .post("/api/payments", &pay_body(payer_token, sold_id, *payer))
            .await
            .status,
        200
    );

    system.expire_holds().await;
    // At once, before any sweep: the expired seat reads as free, the paid one does not.
    let free = ids(&system.http.get("/api/concert/1/available-seats").await);
    assert!(free.contains(&1) && !free.contains(&2), "{free:?}");
    assert_eq!(system.reservation_status(expired_id).await, "EXPIRED");
    assert_eq!(system.reservation_status(sold_id).await, "CONFIRMED");
    assert_error(
        &system
            .http
            .post(
                "/api/payments",
                &pay_body(first_token, expired_id, *first_user),
            )
            .await,
        409,
        "HOLD_EXPIRED",
    );

    // Forty-nine users race for the freed seat, and for the sold one: one winner, and none.
    // (The payer's token was released by the payment.)
    let racers = &tokens[2..];
    for (seat, expected_winners) in [(1, 1), (2, 0)] {
        let bodies: Vec<String> = racers
            .iter()
            .map(|(u, t)| reserve_body(t, 1, seat, *u))
            .collect();
        let replies =
            futures::future::join_all(bodies.iter().map(|b| system.http.post("/api/reserve", b)))
                .await;
        assert_eq!(
            replies.iter().filter(|r| r.status == 303).count(),
            expected_winners,
            "seat {seat}"
        );
        assert!(
            replies
                .iter()
                .filter(|r| r.status != 303)
                .all(|r| r.json["code"] == "SEAT_TAKEN")
        );
    }
    // The sweeper's pass changes nothing that reads could see.
    reservation::store::holds::sweep(system.reservation_db(), 1000)
        .await
        .unwrap();
    assert_eq!(system.reservation_status(expired_id).await, "EXPIRED");
    assert_eq!(system.reservation_status(sold_id).await, "CONFIRMED");
    let (paid_claims,): (i64,) =
        sqlx::query_as("select count(*) from seat_claims where seat_no = 2 and held_until is null")
            .fetch_one(system.reservation_db())
            .await
            .unwrap();
    assert_eq!(paid_claims, 1);
}

#[tokio::test]
async fn concurrent_charges_and_payments_sum_exactly_and_never_go_negative() {
    let system = System::start_without_seat_limit(default_policy()).await;
    let (user, token) = system.active_tokens([7]).await.remove(0);
    // 50 holds on S-grade seats (21..=45 of options 1 and 2), 70,000 each.
    let mut reservations = Vec::new();
    for option in 1..=2 {
        for seat in 21..=45 {
            let reply = system
                .http
                .post("/api/reserve", &reserve_body(&token, option, seat, user))
                .await;
            assert_eq!(reply.status, 303, "{}", reply.json);
            assert_eq!(reply.json["price"], 70_000);
            reservations.push(reply.json["reservationId"].as_i64().unwrap());
        }
    }
    let start = 1_000_000;
    system
        .http
        .post(
            &format!("/api/users/{user}/balance/charge"),
            &format!(r#"{{"amount": {start}}}"#),
        )
        .await;

    // 50 charges of 30,000 and 50 payments of 70,000 at once: 3.5M wanted, at most 2.5M ever
    // available. Whatever the order, the first 14 payments are covered by the starting
    // 1,000,000 alone, and no more than 35 can be (2.5M / 70,000), so both outcomes happen.
    let charge_path = format!("/api/users/{user}/balance/charge");
    let charges = futures::future::join_all(
        (0..50).map(|_| system.http.post(&charge_path, r#"{"amount": 30000}"#)),
    );
    let pay_bodies: Vec<String> = reservations
        .iter()
        .map(|id| pay_body(&token, *id, user))
        .collect();
    let payments = futures::future::join_all(
        pay_bodies
            .iter()
            .map(|b| system.http.post("/api/payments", b)),
    );
    let (charges, payments) = tokio::join!(charges, payments);
    assert!(charges.iter().all(|r| r.status == 200));
    let paid = payments.iter().filter(|r| r.status == 200).count() as i64;
    assert!((14..=35).contains(&paid), "{paid} payments succeeded");
    for refused in payments.iter().filter(|r| r.status != 200) {
        assert_error(refused, 400, "INSUFFICIENT_BALANCE");
    }
    let balance = system
        .http
        .get(&format!("/api/users/{user}/balance"))
        .await
        .json["balance"]
        .as_i64()
        .unwrap();
    assert_eq!(balance, start + 50 * 30_000 - paid * 70_000);
    assert!(balance >= 0);
    let (confirmed,): (i64,) =
        sqlx::query_as("select count(*) from reservations where status = 'CONFIRMED'")
            .fetch_one(system.reservation_db())
            .await
            .unwrap();
    assert_eq!(confirmed, paid);
    // Every payment reported the balance it left, and those balances are all distinct.
    let after: HashSet<i64> = payments
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.json["balance"].as_i64().unwrap())
        .collect();
    assert_eq!(after.len() as i64, paid);
}

#[tokio::test]
async fn a_retried_payment_charges_once() {
    let system = System::start(default_policy()).await;
    let (user, token) = system.active_tokens([9]).await.remove(0);
    system
        .http
        .post(
            &format!("/api/users/{user}/balance/charge"),
            r#"{"amount": 500000}"#,
        )
        .await;
    let held = system
        .http
        .post("/api/reserve", &reserve_body(&token, 3, 30, user))
        .await;
    let id = held.json["reservationId"].as_i64().unwrap();
    let body = pay_body(&token, id, user);
    let key = [("idempotency-key", "pay-9-once")];
    // The same request sent ten times at once, then once more.
    let replies = futures::future::join_all(
        (0..10).map(|_| system.http.post_with("/api/payments", &body, &key)),
    )
    .await;
    assert!(
        replies.iter().all(|r| r.status == 200),
        "every retry gets the first answer: {:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let again = system.http.post_with("/api/payments", &body, &key).await;
    assert_eq!(
        again.status, 200,
        "a retry after the token's release gets the first answer: {}",
        again.json
    );
    let payment_ids: HashSet<i64> = replies
        .iter()
        .chain(std::iter::once(&again))
        .filter(|r| r.status == 200)
        .map(|r| r.json["paymentId"].as_i64().unwrap())
        .collect();
    assert_eq!(
        payment_ids.len(),
        1,
        "statuses: {:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let balance = system
        .http
        .get(&format!("/api/users/{user}/balance"))
        .await
        .json["balance"]
        .as_i64()
        .unwrap();
    assert_eq!(balance, 500_000 - 70_000);
    // The payment released the token: without the key there is nothing to replay.
    assert_error(
        &system.http.post("/api/payments", &body).await,
        401,
        "TOKEN_NOT_FOUND",
    );
    // Back through the queue, a second payment without the key is refused, not charged.
    let (_, token) = system.active_tokens([user]).await.remove(0);
    let body = pay_body(&token, id, user);
    assert_error(
        &system.http.post("/api/payments", &body).await,
        409,
        "ALREADY_PAID",
    );
    // The same key for another reservation is refused.
    let other = system
        .http
        .post("/api/reserve", &reserve_body(&token, 3, 31, user))
        .await;
    let other_body = pay_body(&token, other.json["reservationId"].as_i64().unwrap(), user);
    assert_error(
        &system
            .http
            .post_with("/api/payments", &other_body, &key)
            .await,
        409,
        "IDEMPOTENCY_KEY_REUSED",
    );

    // Charges and holds honour the key too.
    let charge_path = format!("/api/users/{user}/balance/charge");
    let charge_key = [("idempotency-key", "charge-9")];
    let first = system
        .http
        .post_with(&charge_path, r#"{"amount": 1000}"#, &charge_key)
        .await;
    let second = system
        .http
        .post_with(&charge_path, r#"{"amount": 1000}"#, &charge_key)
        .await;
    assert_eq!(first.json, second.json);
    let hold_key = [("idempotency-key", "hold-9")];
    let hold = reserve_body(&token, 4, 4, user);
    let first = system
        .http
        .post_with("/api/reserve", &hold, &hold_key)
        .await;
    let second = system
        .http
        .post_with("/api/reserve", &hold, &hold_key)
        .await;
    assert_eq!((first.status, second.status), (303, 303));
    assert_eq!(first.json["reservationId"], second.json["reservationId"]);
}

/// The original scenario 1: available dates → first option's seats → reserve the first seat,
/// by many users at once, each with its own id and a real token.
#[tokio::test]
async fn original_scenario_one_runs_end_to_end() {
    let system = System::start(default_policy()).await;
    let tokens = system.active_tokens(1..=30).await;
    let journeys = tokens.iter().map(|(user, token)| {
        let http = system.http.clone();
        async move {
            let dates = http.get("/api/concert/1/available-dates").await;
            assert_eq!(dates.status, 200);
            let option = dates.json[0]["id"].as_i64().expect("an option");
            let seats = http
                .get(&format!("/api/concert/{option}/available-seats"))
                .await;
            let seat = seats.json[0]["id"].as_i64().expect("a seat");
            http.post("/api/reserve", &reserve_body(token, option, seat, *user))
                .await
                .status
        }
    });
    let statuses = futures::future::join_all(journeys).await;
    assert!(
        statuses.iter().all(|s| *s == 303 || *s == 400),
        "{statuses:?}"
    );
    assert!(statuses.contains(&303));
    let won = statuses.iter().filter(|s| **s == 303).count();
    let free: usize = system
        .http
        .get("/api/concert/concert/1/available-concert-options")
        .await
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["availableSeats"].as_u64().unwrap() as usize)
        .sum();
    assert_eq!(free, 500 - won);
}

/// The original scenario 2: options with counts, then seats 1..50 of options 1..10 in turn;
/// five users sweep the whole hall at once. Every seat ends with exactly one holder.
#[tokio::test]
async fn original_scenario_two_runs_end_to_end() {
    let system = System::start_without_seat_limit(default_policy()).await;
    let tokens = system.active_tokens(1..=5).await;
    let sweeps = tokens.iter().map(|(user, token)| {
        let http = system.http.clone();
        async move {
            let options = http
                .get("/api/concert/concert/1/available-concert-options")
                .await;
            assert_eq!(options.status, 200);
            let mut won = 0;
            for option in 1..=10 {
                for seat in 1..=50 {
                    let reply = http
                        .post("/api/reserve", &reserve_body(token, option, seat, *user))
                        .await;
                    match reply.status {
                        303 => won += 1,
                        400 => assert_eq!(reply.json["code"], "SEAT_TAKEN"),
                        other => panic!("unexpected {other}: {}", reply.json),
                    }
                }
            }
            won
        }
    });
    let won: usize = futures::future::join_all(sweeps).await.into_iter().sum();
    assert_eq!(won, 500);
    let options = system
        .http
        .get("/api/concert/concert/1/available-concert-options")
        .await;
    assert!(
        options
            .json
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["availableSeats"] == 0)
    );
    assert_eq!(
        system.http.get("/api/concert/1/available-dates").await.json,
        serde_json::json!([])
    );
}

#[tokio::test]
async fn bad_input_on_the_booking_routes_is_a_clear_4xx() {
    let system = System::start(default_policy()).await;
    let http = &system.http;
    let (user, token) = system.active_tokens([3]).await.remove(0);
    assert_error(
        &http.get("/api/concert/abc/available-seats").await,
        400,
        "INVALID_PATH",
    );
    assert_error(
        &http.get("/api/concert/0/available-dates").await,
        400,
        "INVALID_CONCERT_ID",
    );
    assert_error(
        &http.get("/api/concert/99/available-dates").await,
        404,
        "CONCERT_NOT_FOUND",
    );
    assert_error(
        &http.get("/api/concert/99/available-seats").await,
        404,
        "OPTION_NOT_FOUND",
    );
    assert_error(
        &http
            .get("/api/concert/concert/99/available-concert-options")
            .await,
        404,
        "CONCERT_NOT_FOUND",
    );
    assert_error(
        &http.get("/api/reservations/999").await,
        404,
        "RESERVATION_NOT_FOUND",
    );
    assert_error(
        &http.get("/api/reservations/-1").await,
        400,
        "INVALID_RESERVATION_ID",
    );
    assert_error(&http.get("/api/users/x/balance").await, 400, "INVALID_PATH");
    assert_error(&http.post("/api/reserve", "{").await, 400, "INVALID_JSON");
    assert_error(
        &http.post("/api/reserve", r#"{"token": "t"}"#).await,
        400,
        "INVALID_BODY",
    );
    assert_error(
        &http
            .post("/api/reserve", &reserve_body(&token, 1, 0, user))
            .await,
        400,
        "INVALID_SEAT_ID",
    );
    assert_error(
        &http
            .post(
                "/api/reserve",
                &reserve_body(&token, 1, 3_000_000_000, user),
            )
            .await,
        400,
        "INVALID_SEAT_ID",
    );
    assert_error(
        &http
            .post("/api/reserve", &reserve_body(&token, 1, 51, user))
            .await,
        404,
        "SEAT_NOT_FOUND",
    );
    assert_error(
        &http
            .post("/api/reserve", &reserve_body(&token, 11, 1, user))
            .await,
        404,
        "OPTION_NOT_FOUND",
    );
    let charge = format!("/api/users/{user}/balance/charge");
    assert_error(
        &http.post(&charge, r#"{"amount": 0}"#).await,
        400,
        "INVALID_AMOUNT",
    );
    assert_error(
        &http.post(&charge, r#"{"amount": -5}"#).await,
        400,
        "INVALID_AMOUNT",
    );
    assert_error(
        &http.post(&charge, r#"{"amount": 100000001}"#).await,
        400,
        "AMOUNT_TOO_LARGE",
    );
    assert_error(
        &http.post(&charge, r#"{"amount": "10"}"#).await,
        400,
        "INVALID_BODY",
    );
    assert_error(
        &http
            .post_with(
                &charge,
                r#"{"amount": 10}"#,
                &[("idempotency-key", "has space")],
            )
            .await,
        400,
        "INVALID_IDEMPOTENCY_KEY",
    );
    assert_error(
        &http.post("/api/payments", r#"{"reservationId": 1}"#).await,
        400,
        "INVALID_BODY",
    );
    assert_eq!(
        http.get(&format!("/api/users/{user}/balance")).await.json["balance"],
        0
    );
}
