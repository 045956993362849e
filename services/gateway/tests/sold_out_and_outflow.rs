//! The admitter against the real reservation service (real PostgreSQL, catalog, gateway): a
//! concert whose seats are all held stops admitting within one tick and its waiters are told
//! SOLD_OUT over HTTP; a hold that runs out lets exactly one more fan in; and holds stuck in
//! the database lower the admission outflow.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod support;

use std::time::Duration;

use queue::{
    admitter::{Admitter, Limits, TickReport},
    domain::Room,
    outflow::{OutflowLimit, Targets},
    reservation::Reservation,
};
use support::System;

const CONCERT: i64 = 1;
/// The test catalog's seed: 10 options × 50 seats for concert 1.
const SEATS: i64 = 500;

fn limits() -> Limits {
    Limits {
        rooms_per_tick: 16,
        concurrency: 2,
        budget: Duration::from_secs(5),
    }
}

fn admitter(system: &System, targets: Targets) -> Admitter {
    let url = system.reservation_url.as_deref().expect("reservation");
    let reservation = Reservation::connect(url, Duration::from_secs(2)).expect("client");
    Admitter::new(
        system.queue_store.clone(),
        Duration::from_millis(100),
        limits(),
    )
    .with_reservation(reservation, targets)
}

fn relaxed() -> Targets {
    Targets {
        hold_latency: Duration::from_secs(10),
        holds_in_flight: 1_000,
    }
}

async fn join(system: &System, user: i64, concert: Option<i64>) -> String {
    let body = match concert {
        Some(concert) => format!(r#"{{"userId": {user}, "concertId": {concert}}}"#),
        None => format!(r#"{{"userId": {user}}}"#),
    };
    let reply = system.http.post("/queue/issue-token", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    reply.json["token"].as_str().expect("token").to_owned()
}

async fn check(system: &System, token: &str) -> serde_json::Value {
    let reply = system
        .http
        .get(&format!("/queue/check-queue?token={token}"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    reply.json
}

fn reserve_body(token: &str, option: i64, seat: i64, user: i64) -> String {
    format!(
        r#"{{"token": "{token}", "concertOptionId": {option}, "seatId": {seat}, "userId": {user}}}"#
    )
}

async fn hold(system: &System, user: i64, token: &str, option: i64, seat: i64) -> i64 {
    let reply = system
        .http
        .post("/api/reserve", &reserve_body(token, option, seat, user))
        .await;
    assert_eq!(reply.status, 303, "{}", reply.json);
    reply.json["reservationId"]
        .as_i64()
        .expect("reservation id")
}

/// `admission_rate` and `active_cap`, otherwise the support's defaults.
fn policy(admission_rate: f64, active_cap: u32) -> queue::Policy {
    queue::Policy {
        admission_rate,
        active_cap,
        ..support::default_policy()
    }
}

async fn tick(system: &System, admitter: &mut Admitter) -> TickReport {
    system.advance(1_000);
    admitter.tick().await.expect("tick")
}

#[tokio::test]
async fn a_concert_with_every_seat_held_stops_admitting_within_one_tick_and_an_expired_hold_lets_one_fan_in()
 {
    let system = System::start_without_seat_limit(policy(1_000.0, 0)).await;
    catalog::testing::give_own_room(system.catalog_db(), CONCERT)
        .await
        .expect("own room");
    let room = Room::Concert(CONCERT);
    let mut admitter = admitter(&system, relaxed());

    // One buyer comes in while seats are free, and holds every one of them.
    let buyer = join(&system, 1, Some(CONCERT)).await;
    tick(&system, &mut admitter).await;
    let report = tick(&system, &mut admitter).await;
    assert_eq!(report.admission.admitted, 1, "{report:?}");
    let mut holds = Vec::new();
    for option in 1..=10 {
        for seat in 1..=50 {
            holds.push(hold(&system, 1, &buyer, option, seat).await);
        }
    }
    assert_eq!(holds.len() as i64, SEATS);

    // Fans join; the very next tick finds no free seat, admits nobody, and every fan is told.
    let mut fans = Vec::new();
    for user in 2..=11 {
        fans.push(join(&system, user, Some(CONCERT)).await);
    }
    let report = tick(&system, &mut admitter).await;
    assert_eq!(report.admission.admitted, 0, "{report:?}");
    for (place, token) in fans.iter().enumerate() {
        let entry = check(&system, token).await;
        assert_eq!(entry["status"], "SOLD_OUT", "{entry}");
        assert_eq!(entry["seatsMayReturn"], true, "{entry}");
        assert_eq!(entry["position"], place as u64 + 1, "{entry}");
    }
    let figures = system
        .queue_store
        .room_figures(room)
        .await
        .expect("figures");
    assert_eq!(figures.in_effect.limit, OutflowLimit::SoldOut);
    let seats = figures.seats.expect("seats seen");
    assert_eq!((seats.free, seats.held, seats.sold), (0, 500, 0));

    // More ticks change nothing while every seat stays held.
    for _ in 0..3 {
        assert_eq!(tick(&system, &mut admitter).await.admission.admitted, 0);
    }

    // One hold runs out: the next tick lets exactly the first fan in, the rest wait again.
    reservation::testing::run_out_holds(system.reservation_db(), Some(holds[0]))
        .await
        .expect("run out one hold");
    let report = tick(&system, &mut admitter).await;
    assert_eq!(report.admission.admitted, 1, "{report:?}");
    assert_eq!(check(&system, &fans[0]).await["status"], "ACTIVE");
    let second = check(&system, &fans[1]).await;
    assert_eq!(
        (&second["status"], &second["position"]),
        (&"WAITING".into(), &1.into())
    );
    // That fan has not chosen yet: one free seat, one fan choosing, nobody else comes in.
    assert_eq!(tick(&system, &mut admitter).await.admission.admitted, 0);
}

#[tokio::test]
async fn holds_stuck_in_the_database_lower_the_outflow_and_it_climbs_back_once_they_finish() {
    let system = System::start_without_seat_limit(policy(10.0, 0)).await;
    let buyers = system.active_tokens(1..=6).await;
    let targets = Targets {
        hold_latency: Duration::from_millis(200),
        holds_in_flight: 4,
    };
    let mut admitter = admitter(&system, targets);
    for user in 100..400 {
        join(&system, user, None).await;
    }
    // Healthy: the full 10/s.
    tick(&system, &mut admitter).await;
    let healthy = tick(&system, &mut admitter).await;
    assert_eq!(healthy.admission.admitted, 10, "{healthy:?}");
    assert_eq!(healthy.pace.expect("pace").limit, OutflowLimit::None);

    // Holds block on a lock that lets reads (the seat counts) through but no claim write.
    let mut lock = system.reservation_db().begin().await.expect("transaction");
    sqlx::query("lock table seat_claims in exclusive mode")
        .execute(&mut *lock)
        .await
        .expect("lock");
    let mut stuck = Vec::new();
    for (seat, (user, token)) in buyers.iter().cloned().enumerate() {
        let http = system.http.clone();
        let body = reserve_body(&token, 2, seat as i64 + 1, user);
        stuck.push(tokio::spawn(async move {
            http.post("/api/reserve", &body).await
        }));
    }
    // The ticks see the holds in flight and halve the share each (manual) second.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut slowed = Vec::new();
    loop {
        let report = tick(&system, &mut admitter).await;
        let pace = report.pace.clone().expect("pace");
        if pace.limit == OutflowLimit::HoldsInFlight {
            slowed.push(report.admission.admitted);
            if slowed.len() == 3 {
                assert!(pace.share <= 0.125 + 1e-9, "{pace:?}");
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stuck holds never showed: {report:?}"
        );
        tokio::task::yield_now().await;
    }
    assert!(
        slowed.iter().all(|&admitted| admitted < 10) && slowed[2] <= 2,
        "admitted per second while holds were stuck: {slowed:?}"
    );
    let figures = system
        .queue_store
        .room_figures(Room::Default)
        .await
        .expect("figures");
    assert_eq!(figures.in_effect.limit, OutflowLimit::HoldsInFlight);
    assert!(figures.in_effect.admission_rate < 2.0, "{figures:?}");
    assert!(
        figures.in_effect.detail.contains("holds in flight"),
        "{figures:?}"
    );

    // The lock goes; the holds finish; the outflow climbs back to the ceiling.
    lock.rollback().await.expect("unlock");
    for hold in stuck {
        assert_eq!(hold.await.expect("hold task").status, 303);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let report = tick(&system, &mut admitter).await;
        if report.pace.as_ref().expect("pace").limit == OutflowLimit::None {
            assert_eq!(report.admission.admitted, 10, "{report:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never recovered: {report:?}"
        );
        tokio::task::yield_now().await;
    }
}
