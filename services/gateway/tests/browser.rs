//! The fan's page and the operator's console in a real headless Chromium, against the real
//! system on port 0 (own databases, own Redis key prefix, the queue on a manual clock that the
//! test steps one admission at a time). Written against the DOM contract of the pages: root
//! `main#fan` / `main#console` with `data-state`, and the ids and data attributes it names.
//! Screenshots of every step: target/browser-screenshots/<test>/.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed expectation is the test failing

#[path = "support/browser.rs"]
mod browser;
mod support;

use std::time::Duration;

use browser::{Browser, DESKTOP, PHONE, Page};
use queue::Policy;
use serde_json::Value;
use support::System;

const ADMIN_TOKEN: &str = "browser-test-operator-secret-0123456789";

/// One admission per second, as on a slow on-sale.
fn one_per_second() -> Policy {
    Policy {
        admission_rate: 1.0,
        active_cap: 0,
        active_ttl: Duration::from_secs(600),
        waiting_grace: Duration::from_secs(60),
        admitted_idle: Duration::ZERO,
    }
}

async fn start_system(gateway_flags: &[&str]) -> (System, String) {
    start_system_with(one_per_second(), gateway_flags).await
}

async fn start_system_with(policy: Policy, gateway_flags: &[&str]) -> (System, String) {
    let system = System::start_with(policy, gateway_flags).await;
    // The first admission step only starts the queue's admission clock.
    assert_eq!(system.admit().await, 0, "nobody waits yet");
    let base = format!("http://{}", system.http.addr());
    (system, base)
}

/// One second on the queue's clock, then one admission step; returns how many it admitted.
async fn admission_step(system: &System) -> u64 {
    system.advance(1_000);
    system.admit().await
}

/// Opens the fan's page and joins the line as `user` (trusted mode: the user id field).
async fn join(page: &Page, base: &str, user: i64) {
    page.goto(&format!("{base}/")).await;
    page.wait_for_state("fan", "join").await;
    page.step("join-form").await;
    page.fill("#user-id", &user.to_string()).await;
    page.click("#join").await;
}

/// Marks the document, so that a later check can tell it was never reloaded.
async fn mark_document(page: &Page) {
    page.eval("window.__notReloaded = true; return null;").await;
}

async fn assert_not_reloaded(page: &Page) {
    assert_eq!(
        page.eval("return window.__notReloaded === true;").await,
        Value::Bool(true),
        "the page was reloaded (or navigated away)"
    );
}

/// The time (page clock) from which [`wait_for_two_polls_since`] counts.
async fn page_now(page: &Page) -> f64 {
    page.eval("return performance.now();")
        .await
        .as_f64()
        .expect("a number")
}

/// Waits until the page has started two queue polls after `since` and the first has been
/// answered: the second starts only after the first's answer was handled, so what the page
/// shows then reflects the queue as it was after `since`.
async fn wait_for_two_polls_since(page: &Page, since: f64) {
    let script = format!(
        "return performance.getEntriesByType('resource') \
           .filter(e => e.name.includes('/queue/check-queue') && e.startTime > {since}) \
           .length >= 2;"
    );
    page.wait_for("two queue polls after the admission step", &script)
        .await;
}

/// Polls the queue for tokens that no page polls for, so they keep their places.
async fn heartbeat(system: &System, tokens: &[String]) {
    for token in tokens {
        let reply = system
            .http
            .get(&format!("/queue/check-queue?token={token}"))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.json);
    }
}

/// The `data-seat-id` of the first seat on the map that can be picked.
async fn first_free_seat(page: &Page) -> i64 {
    page.wait_for(
        "a free seat on the map",
        "const seat = document.querySelector('#seat-map button.seat[data-seat-id]:not([disabled])'); \
         return seat === null ? null : Number(seat.dataset.seatId);",
    )
    .await
    .as_i64()
    .expect("a seat id")
}

fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

/// Waits until the page's `#balance` shows the balance the API has for `user`.
async fn wait_for_shown_balance(page: &Page, system: &System, user: i64, at_least: i64) -> i64 {
    let deadline = std::time::Instant::now() + browser::WAIT;
    let balance = loop {
        let reply = system.http.get(&format!("/api/users/{user}/balance")).await;
        let balance = reply.json["balance"].as_i64().expect("balance");
        if balance >= at_least {
            break balance;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the balance of user {user} stayed {balance}, below {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let script = format!(
        "const el = document.querySelector('#balance'); \
         return el !== null && el.textContent.replace(/[^0-9]/g, '') === {:?};",
        digits(&balance.to_string())
    );
    page.wait_for(&format!("#balance to show {balance}"), &script)
        .await;
    balance
}

#[tokio::test]
async fn the_second_fan_sees_position_2_then_1_then_admitted_without_a_reload_pays_and_the_first_fans_map_shows_the_seat_taken()
 {
    let (system, base) = start_system(&[]).await;
    let browser = Browser::start("two_fans_one_admission_per_second").await;
    let first = browser.open("fan1", DESKTOP).await;
    let second = browser.open("fan2", DESKTOP).await;

    join(&first, &base, 1).await;
    first.wait_for_state("fan", "waiting").await;
    first.wait_for_text("#position", "1").await;
    first.step("waiting-first").await;

    join(&second, &base, 2).await;
    second.wait_for_state("fan", "waiting").await;
    mark_document(&second).await;
    second.wait_for_text("#position", "2").await;
    assert!(
        second.text("#eta").await.is_some_and(|eta| !eta.is_empty()),
        "#eta shows the estimated wait"
    );
    assert_eq!(
        second
            .eval("const p = document.querySelector('#progress'); return p !== null && p.tagName;")
            .await,
        "PROGRESS",
        "#progress is a <progress>"
    );
    let status_before = second.text("#status").await.unwrap_or_default();
    second.step("waiting-position-2").await;

    assert_eq!(admission_step(&system).await, 1);
    second.wait_for_text("#position", "1").await;
    second
        .wait_for(
            "#status (aria-live) to announce the new position",
            &format!(
                "const s = document.querySelector('#status'); \
                 return s !== null && s.textContent.trim() !== '' \
                   && s.textContent.trim() !== {status_before:?};"
            ),
        )
        .await;
    assert_eq!(
        second
            .eval("const s = document.querySelector('#status'); return s && s.getAttribute('aria-live');")
            .await,
        "polite"
    );
    second.step("waiting-position-1").await;
    first.wait_for_state("fan", "admitted").await;
    first.click("#options button[data-option-id=\"1\"]").await;
    first_free_seat(&first).await;
    first.step("admitted-seat-map").await;

    assert_eq!(admission_step(&system).await, 1);
    second.wait_for_state("fan", "admitted").await;
    assert_not_reloaded(&second).await;
    assert!(
        second
            .text("#admitted-until")
            .await
            .is_some_and(|left| !left.is_empty()),
        "#admitted-until shows the admitted time left"
    );
    second.step("admitted").await;

    second.click("#options button[data-option-id=\"1\"]").await;
    let seat = first_free_seat(&second).await;
    second.wait_for(
        "a price legend",
        "const legend = document.querySelector('#legend'); return legend !== null && legend.textContent.trim() !== '';",
    )
    .await;
    second.step("seat-map").await;
    second
        .click(&format!("#seat-map button.seat[data-seat-id=\"{seat}\"]"))
        .await;
    second.wait_for_state("fan", "held").await;
    assert!(
        second
            .text("#hold-countdown")
            .await
            .is_some_and(|left| !left.is_empty()),
        "#hold-countdown shows the hold's time left"
    );
    wait_for_shown_balance(&second, &system, 2, 0).await;
    second.step("held").await;

    second.click("#top-up").await;
    wait_for_shown_balance(&second, &system, 2, 1).await;
    second.step("topped-up").await;
    second.click("#pay").await;
    second.wait_for_state("fan", "paid").await;
    let reservation = second
        .wait_for(
            "#confirmation with its reservation id",
            "const c = document.querySelector('#confirmation'); \
             return c === null ? null : Number(c.dataset.reservationId) || null;",
        )
        .await
        .as_i64()
        .expect("a reservation id");
    second.step("paid").await;
    let paid = system
        .http
        .get(&format!("/api/reservations/{reservation}"))
        .await;
    assert_eq!(paid.json["status"], "CONFIRMED", "{}", paid.json);
    assert_eq!(paid.json["seatId"], seat, "{}", paid.json);
    assert_eq!(paid.json["userId"], 2, "{}", paid.json);

    // The first fan's map is refreshed while it is open: the sold seat turns disabled.
    first
        .wait_for_within(
            &format!("seat {seat} to be taken on the first fan's map"),
            &format!(
                "const seat = document.querySelector('#seat-map button.seat[data-seat-id=\"{seat}\"]'); \
                 return seat !== null && seat.disabled;"
            ),
            // The map refreshes every few seconds; the seat must turn within two refreshes.
            Duration::from_secs(10),
        )
        .await;
    first.step("seat-taken").await;

    browser.finish().await;
}

#[tokio::test]
async fn a_waiting_fans_position_stops_while_the_operator_pauses_admission_and_moves_to_admitted_after_resume()
 {
    // A short grace keeps the advised poll interval (at most a third of it) short while paused.
    let policy = Policy {
        waiting_grace: Duration::from_secs(6),
        ..one_per_second()
    };
    let admin_flag = format!("--admin-token={ADMIN_TOKEN}");
    let (system, base) = start_system_with(policy, &[&admin_flag]).await;
    let browser = Browser::start("operator_pauses_and_resumes").await;
    let operator = browser.open("operator", DESKTOP).await;
    let fan = browser.open("fan", DESKTOP).await;

    // Two people ahead of the fan, joined through the API; the test keeps their places alive.
    let mut ahead = Vec::new();
    for user in [1, 2] {
        let reply = system
            .http
            .post("/queue/issue-token", &format!(r#"{{"userId": {user}}}"#))
            .await;
        assert_eq!(reply.json["position"], user, "{}", reply.json);
        ahead.push(reply.json["token"].as_str().expect("token").to_owned());
    }
    join(&fan, &base, 3).await;
    fan.wait_for_state("fan", "waiting").await;
    fan.wait_for_text("#position", "3").await;
    mark_document(&fan).await;
    fan.step("waiting-position-3").await;

    operator.goto(&format!("{base}/admin")).await;
    operator.wait_for_state("console", "sign-in").await;
    operator.step("sign-in").await;
    operator.fill("#admin-token", ADMIN_TOKEN).await;
    operator.click("#admin-sign-in").await;
    operator.wait_for_state("console", "live").await;
    let room = "#rooms tr[data-room=\"default\"]";
    operator
        .wait_for_text(&format!("{room} [data-field=\"waiting\"]"), "3")
        .await;
    operator
        .wait_for_text(&format!("{room} [data-field=\"paused\"]"), "admitting")
        .await;
    operator.step("live").await;

    operator
        .click(&format!("{room} button[data-action=\"pause\"]"))
        .await;
    operator
        .wait_for_text(&format!("{room} [data-field=\"paused\"]"), "paused")
        .await;
    operator.step("paused").await;
    fan.wait_for_state("fan", "paused").await;

    for step in 1..=2 {
        let since = page_now(&fan).await;
        assert_eq!(
            admission_step(&system).await,
            0,
            "admission step {step} while paused admitted someone"
        );
        heartbeat(&system, &ahead).await;
        wait_for_two_polls_since(&fan, since).await;
        assert_eq!(
            fan.text("#position").await.as_deref(),
            Some("3"),
            "the fan's position moved during paused step {step}"
        );
        assert_eq!(
            fan.eval("return document.querySelector('main#fan').dataset.state;")
                .await,
            "paused"
        );
    }
    fan.step("still-position-3-while-paused").await;

    operator
        .click(&format!("{room} button[data-action=\"resume\"]"))
        .await;
    operator
        .wait_for_text(&format!("{room} [data-field=\"paused\"]"), "admitting")
        .await;
    operator
        .wait_for(
            "the resume, then the pause, in the change log (newest first)",
            "const items = document.querySelectorAll('#changes > *'); \
             return items.length >= 2 && /resum/i.test(items[0].textContent) \
               && /paus/i.test(items[1].textContent);",
        )
        .await;
    operator.step("resumed").await;

    for expected in ["2", "1"] {
        assert_eq!(admission_step(&system).await, 1);
        heartbeat(&system, &ahead).await;
        fan.wait_for_state("fan", "waiting").await;
        fan.wait_for_text("#position", expected).await;
        fan.step(&format!("position-{expected}-after-resume")).await;
    }
    assert_eq!(admission_step(&system).await, 1);
    fan.wait_for_state("fan", "admitted").await;
    assert_not_reloaded(&fan).await;
    fan.step("admitted").await;

    browser.finish().await;
}

/// The page scrolls sideways (wider than the viewport), or not.
async fn assert_no_horizontal_scroll(page: &Page, state: &str) {
    let widths = page
        .eval(
            "const d = document.documentElement; \
             return [d.scrollWidth, d.clientWidth, document.body.scrollWidth, window.innerWidth];",
        )
        .await;
    let widths: Vec<i64> = widths
        .as_array()
        .expect("an array")
        .iter()
        .map(|w| w.as_i64().expect("a width"))
        .collect();
    assert_eq!(widths[3], 360, "the window is 360 px wide");
    assert!(
        widths[0] <= widths[1] && widths[2] <= widths[1],
        "in state {state} the page is wider than 360 px (document {}, body {}, viewport {})",
        widths[0],
        widths[2],
        widths[1]
    );
}

/// Every visible control has an accessible name as the browser computes it (label,
/// aria-label, aria-labelledby, text).
async fn assert_every_control_is_named(page: &Page, state: &str) {
    let unnamed = page.unnamed_controls().await;
    assert!(
        unnamed.is_empty(),
        "in state {state} these controls have no accessible name:\n{}",
        unnamed.join("\n")
    );
}

#[tokio::test]
async fn the_fan_page_at_360_px_has_no_horizontal_scroll_and_every_control_has_an_accessible_name()
{
    let (system, base) = start_system(&[]).await;
    let browser = Browser::start("fan_page_at_360_px").await;
    let phone = browser.open("phone", PHONE).await;

    phone.goto(&format!("{base}/")).await;
    phone.wait_for_state("fan", "join").await;
    assert_no_horizontal_scroll(&phone, "join").await;
    assert_every_control_is_named(&phone, "join").await;
    phone.step("join").await;

    phone.fill("#user-id", "7").await;
    phone.click("#join").await;
    phone.wait_for_state("fan", "waiting").await;
    phone.wait_for_text("#position", "1").await;
    assert_no_horizontal_scroll(&phone, "waiting").await;
    assert_every_control_is_named(&phone, "waiting").await;
    phone.step("waiting").await;

    assert_eq!(admission_step(&system).await, 1);
    phone.wait_for_state("fan", "admitted").await;
    phone.click("#options button[data-option-id=\"1\"]").await;
    let seat = first_free_seat(&phone).await;
    assert_no_horizontal_scroll(&phone, "admitted").await;
    assert_every_control_is_named(&phone, "admitted").await;
    phone.step("admitted-seat-map").await;

    phone
        .click(&format!("#seat-map button.seat[data-seat-id=\"{seat}\"]"))
        .await;
    phone.wait_for_state("fan", "held").await;
    assert_no_horizontal_scroll(&phone, "held").await;
    assert_every_control_is_named(&phone, "held").await;
    phone.step("held").await;

    browser.finish().await;
}

#[tokio::test]
async fn the_fan_page_the_console_and_the_docs_log_no_console_errors_and_leave_a_screenshot_per_step()
 {
    let admin_flag = format!("--admin-token={ADMIN_TOKEN}");
    let (_system, base) = start_system(&[&admin_flag]).await;
    let browser = Browser::start("pages_without_console_errors").await;
    let page = browser.open("visitor", DESKTOP).await;
    let mut shots = Vec::new();

    page.goto(&format!("{base}/")).await;
    page.wait_for_state("fan", "join").await;
    shots.push(page.step("fan-page").await);

    page.goto(&format!("{base}/admin")).await;
    page.wait_for_state("console", "sign-in").await;
    shots.push(page.step("console-sign-in").await);
    page.fill("#admin-token", ADMIN_TOKEN).await;
    page.click("#admin-sign-in").await;
    page.wait_for_state("console", "live").await;
    page.wait_for(
        "the default room in the rooms table",
        "return document.querySelector('#rooms tr[data-room=\"default\"]') !== null;",
    )
    .await;
    shots.push(page.step("console-live").await);

    page.goto(&format!("{base}/docs")).await;
    page.wait_for(
        "the API reference to render the document's title",
        "const title = document.querySelector('.swagger-ui .info .title'); \
         return title !== null && title.textContent.trim() !== '';",
    )
    .await;
    shots.push(page.step("docs").await);

    for shot in &shots {
        let png = std::fs::read(shot).expect("the screenshot file is there");
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1_000,
            "{} is a real PNG",
            shot.display()
        );
        assert!(shot.starts_with(browser.folder()));
    }
    browser.finish().await;
}

/// A short grace (6 s), so that the advised poll interval (at most a third of it less a second) is short.
fn polling_every_second_or_two() -> Policy {
    Policy {
        waiting_grace: Duration::from_secs(6),
        ..one_per_second()
    }
}

/// As [`start_system_with`], with the queue's manual clock set to the real time first: the
/// pages count down with the browser's clock (kept to the gateway's `Date`), so a scheduled
/// instant means the same to the page and to the queue, and reads as a real local time.
async fn start_system_at_wall_clock(policy: Policy, gateway_flags: &[&str]) -> (System, String) {
    let system = System::start_with(policy, gateway_flags).await;
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis();
    system.now.store(
        i64::try_from(wall).expect("ms fit"),
        std::sync::atomic::Ordering::SeqCst,
    );
    assert_eq!(system.admit().await, 0, "nobody waits yet");
    let base = format!("http://{}", system.http.addr());
    (system, base)
}

/// The queue's manual clock, in unix ms.
fn queue_now(system: &System) -> i64 {
    system.now.load(std::sync::atomic::Ordering::SeqCst)
}

fn rfc3339(unix_ms: i64) -> String {
    gateway::wire::rfc3339(unix_ms).expect("an instant")
}

/// `PATCH /admin/rooms/{room}` as the operator.
async fn operator_patch(system: &System, room: &str, body: Value) -> Value {
    let reply = system
        .http
        .send_with(
            "PATCH",
            &format!("/admin/rooms/{room}"),
            Some(&body.to_string()),
            Some("application/json"),
            &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    reply.json
}

/// Waits until the text of `css` (its white space as a reader sees it) contains every one
/// of `parts`.
async fn wait_for_sentence(page: &Page, css: &str, parts: &[&str]) {
    let script = format!(
        "const el = document.querySelector({css:?}); \
         const text = el === null ? '' : el.textContent.replace(/\\s+/g, ' '); \
         return {parts:?}.every(part => text.includes(part));"
    );
    page.wait_for(&format!("{css} to say {parts:?}"), &script)
        .await;
}

#[tokio::test]
async fn a_fan_in_the_prequeue_reads_when_the_sale_opens_that_joining_early_gives_no_advantage_sees_the_countdown_and_gets_a_place_at_the_opening_without_a_reload()
 {
    let admin_flag = format!("--admin-token={ADMIN_TOKEN}");
    let (system, base) =
        start_system_at_wall_clock(polling_every_second_or_two(), &[&admin_flag]).await;
    let opens_at = queue_now(&system) + 10 * 60_000;
    operator_patch(
        &system,
        "default",
        serde_json::json!({"opensAt": rfc3339(opens_at)}),
    )
    .await;
    let browser = Browser::start("fan_in_the_prequeue").await;
    let fan = browser.open("fan", DESKTOP).await;

    join(&fan, &base, 1).await;
    fan.wait_for_state("fan", "prequeue").await;
    mark_document(&fan).await;
    wait_for_sentence(
        &fan,
        "#prequeue-text",
        &[
            "The sale opens ",
            "Everyone who joins before then is put in a random order when it opens",
            "arriving earlier gives no advantage",
            "no need to refresh",
            "keep this page open",
        ],
    )
    .await;
    // The opening in the fan's own time zone, as the browser writes it.
    let local_time = fan
        .eval(&format!(
            "return new Date({opens_at}).toLocaleTimeString('en-GB', {{hour: '2-digit', minute: '2-digit'}});"
        ))
        .await;
    let local_time = local_time.as_str().expect("a time");
    wait_for_sentence(&fan, "#prequeue-text", &[local_time]).await;
    wait_for_sentence(&fan, "#opens-at", &[local_time]).await;
    // The same instant (the browser always writes three fraction digits, the API trims zeros).
    assert_eq!(
        fan.eval(
            "return Date.parse(document.querySelector('#opens-at').getAttribute('datetime'));"
        )
        .await,
        Value::from(opens_at)
    );
    // It counts down: about ten minutes, then a second less.
    let shown = fan
        .wait_for(
            "a countdown of about ten minutes",
            "const t = document.querySelector('#opens-countdown').textContent; \
             return /^(9|10) min \\d\\d s$/.test(t) ? t : null;",
        )
        .await;
    fan.wait_for(
        "the countdown to move on",
        &format!(
            "const t = document.querySelector('#opens-countdown').textContent; \
             return /^(9|10) min \\d\\d s$/.test(t) && t !== {shown};"
        ),
    )
    .await;
    assert_every_control_is_named(&fan, "prequeue").await;
    fan.step("prequeue").await;

    // The operator brings the opening forward; the page takes the new time on its next poll,
    // and at the opening it shows the place drawn for the fan (alone, so the first).
    let sooner = queue_now(&system) + 2_000;
    operator_patch(
        &system,
        "default",
        serde_json::json!({"opensAt": rfc3339(sooner)}),
    )
    .await;
    fan.wait_for(
        "the new opening on the page",
        &format!(
            "return Date.parse(document.querySelector('#opens-at').getAttribute('datetime')) === {sooner};"
        ),
    )
    .await;
    system.advance(2_000);
    fan.wait_for_state("fan", "waiting").await;
    fan.wait_for_text("#position", "1").await;
    assert_not_reloaded(&fan).await;
    fan.step("waiting-after-the-opening").await;
    assert_eq!(admission_step(&system).await, 1);
    fan.wait_for_state("fan", "admitted").await;

    browser.finish().await;
}

#[tokio::test]
async fn a_waiting_fan_is_told_every_seat_is_taken_but_held_ones_may_return_keeps_the_place_and_then_that_it_is_sold_out_for_good()
 {
    let (system, base) = start_system_with(polling_every_second_or_two(), &[]).await;
    let browser = Browser::start("fan_sold_out").await;
    let fan = browser.open("fan", DESKTOP).await;
    let ahead = system
        .http
        .post("/queue/issue-token", r#"{"userId": 1}"#)
        .await;
    let ahead = vec![ahead.json["token"].as_str().expect("token").to_owned()];
    join(&fan, &base, 2).await;
    fan.wait_for_state("fan", "waiting").await;
    fan.wait_for_text("#position", "2").await;
    mark_document(&fan).await;

    // The admitter learns that no seat is free and one is held by someone who has not paid.
    let ceiling = queue::outflow::Pace::ceiling();
    let seats = |free, held, sold| Some(queue::domain::RoomSeats { free, held, sold });
    system
        .queue_store
        .admit_with(queue::domain::Room::Default, &ceiling, seats(0, 1, 49))
        .await
        .expect("admission step");
    heartbeat(&system, &ahead).await;
    fan.wait_for_state("fan", "sold-out").await;
    fan.wait_for_text(
        "#message",
        "Every seat is taken right now. Some are held by fans who have not paid yet: if their \
         time runs out, those seats come back and the line moves again. You keep your place.",
    )
    .await;
    wait_for_sentence(&fan, "#ended-detail", &["Your place in line: 2"]).await;
    assert_not_reloaded(&fan).await;
    fan.step("sold-out-seats-may-return").await;

    // The held seat is paid for: nothing can come back.
    system
        .queue_store
        .admit_with(queue::domain::Room::Default, &ceiling, seats(0, 0, 50))
        .await
        .expect("admission step");
    fan.wait_for_state("fan", "sold-out-final").await;
    fan.wait_for_text("#message", "Sold out: every seat has been sold.")
        .await;
    fan.wait_for_text("#rejoin", "Check again").await;
    assert_every_control_is_named(&fan, "sold-out-final").await;
    fan.step("sold-out-for-good").await;

    browser.finish().await;
}

#[tokio::test]
async fn the_console_shows_the_rate_in_effect_and_why_the_seats_left_idle_give_backs_and_schedules_a_room_with_its_form()
 {
    let admin_flag = format!("--admin-token={ADMIN_TOKEN}");
    let policy = Policy {
        admission_rate: 10.0,
        admitted_idle: Duration::from_secs(120),
        ..one_per_second()
    };
    let (system, base) = start_system_at_wall_clock(policy, &[&admin_flag]).await;
    catalog::testing::give_own_room(system.catalog_db(), 1)
        .await
        .expect("concert 1 gets its own room");
    let room = queue::domain::Room::Concert(1);
    let mut tokens = Vec::new();
    for user in 1..=40 {
        let reply = system
            .http
            .post(
                "/queue/issue-token",
                &format!(r#"{{"userId": {user}, "concertId": 1}}"#),
            )
            .await;
        assert_eq!(reply.json["status"], "WAITING", "{}", reply.json);
        tokens.push(reply.json["token"].as_str().expect("token").to_owned());
    }
    // The reservation service's holds are slow: the admitter paces at 35 % of the rate.
    let slow = queue::outflow::Pace {
        share: 0.35,
        limit: queue::outflow::OutflowLimit::HoldLatency,
        detail: "hold latency 420 ms over the 250 ms target".into(),
    };
    let seats = Some(queue::domain::RoomSeats {
        free: 12,
        held: 3,
        sold: 35,
    });
    let step = |system: &System| {
        let store = system.queue_store.clone();
        let slow = slow.clone();
        async move { store.admit_with(room, &slow, seats).await.expect("step") }
    };
    assert_eq!(step(&system).await.admitted, 0, "the bucket starts empty");
    system.advance(1_000);
    assert_eq!(step(&system).await.admitted, 3);
    // The three admitted do nothing for the idle limit; the others keep polling.
    for advance in [0, 60_000, 60_000] {
        system.advance(advance);
        heartbeat(&system, &tokens[3..]).await;
    }
    let admission = step(&system).await;
    assert_eq!(admission.idled, 3, "{admission:?}");

    let browser = Browser::start("console_rate_in_effect_and_schedule").await;
    let operator = browser.open("operator", DESKTOP).await;
    operator.goto(&format!("{base}/admin")).await;
    operator.wait_for_state("console", "sign-in").await;
    operator.fill("#admin-token", ADMIN_TOKEN).await;
    operator.click("#admin-sign-in").await;
    operator.wait_for_state("console", "live").await;
    // The rate in effect next to the configured one in the room's row, and why below it.
    operator
        .wait_for_text(
            "#rooms tr[data-room=\"concert-1\"] [data-field=\"in-effect\"]",
            "3.5/s of 10/s",
        )
        .await;
    let detail = "#rooms tr[data-detail-for=\"concert-1\"]";
    operator
        .wait_for_text(
            &format!("{detail} [data-field=\"outflow\"]"),
            "Admitting 3.5/s of 10/s: hold latency 420 ms over the 250 ms target.",
        )
        .await;
    assert_eq!(
        operator
            .eval(&format!(
                "return document.querySelector('{detail} [data-field=\"outflow\"]').dataset.limit;"
            ))
            .await,
        "hold-latency"
    );
    operator
        .wait_for_text(
            &format!("{detail} [data-field=\"seats\"]"),
            "12 free, 3 held (may come back), 35 sold",
        )
        .await;
    operator
        .wait_for_text(
            &format!("{detail} [data-field=\"idled\"]"),
            "3 admitted fans gave their slot back by doing nothing",
        )
        .await;

    // Schedule the default room with its form: the pre-queue opened a minute ago, the sale
    // opens in half an hour (the inputs are in the operator's time zone).
    let now = queue_now(&system);
    let (prequeue, opens) = (now - 60_000, now + 30 * 60_000);
    let form = "#rooms tr[data-detail-for=\"default\"] form.schedule";
    operator
        .eval(&format!(
            "const pad = (n) => String(n).padStart(2, '0'); \
             const local = (ms) => {{ const d = new Date(ms); \
               return `${{d.getFullYear()}}-${{pad(d.getMonth() + 1)}}-${{pad(d.getDate())}}T${{pad(d.getHours())}}:${{pad(d.getMinutes())}}`; }}; \
             for (const [name, ms] of [['prequeueOpensAt', {prequeue}], ['opensAt', {opens}]]) {{ \
               const input = document.querySelector('{form} input[data-schedule=\"' + name + '\"]'); \
               input.value = local(ms); input.dispatchEvent(new Event('input')); }} \
             return null;"
        ))
        .await;
    operator
        .click(&format!("{form} button[data-action=\"schedule\"]"))
        .await;
    let default = "#rooms tr[data-room=\"default\"]";
    operator
        .wait_for_text(&format!("{default} [data-field=\"paused\"]"), "pre-queue")
        .await;
    // The admitter's next step in the default room: nobody is admitted before the opening.
    system.admit().await;
    operator
        .wait_for_text(
            "#rooms tr[data-detail-for=\"default\"] [data-field=\"outflow\"]",
            "Admitting nobody: the pre-queue is open, the sale is not.",
        )
        .await;
    operator
        .wait_for(
            "the schedule in the change log",
            "const first = document.querySelector('#changes > li'); \
             return first !== null && /scheduled the pre-queue to open/.test(first.textContent) \
               && /scheduled the sale to open/.test(first.textContent);",
        )
        .await;
    // What the queue was told: the minutes the operator typed, as instants.
    let rooms = system
        .http
        .send_with(
            "GET",
            "/admin/rooms",
            None,
            None,
            &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        )
        .await;
    let listed = rooms.json["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .find(|r| r["room"] == "default")
        .expect("the default room")
        .clone();
    let minute = |ms: i64| rfc3339(ms - ms.rem_euclid(60_000));
    assert_eq!(
        (&listed["prequeueOpensAt"], &listed["opensAt"]),
        (
            &Value::String(minute(prequeue)),
            &Value::String(minute(opens))
        ),
        "{listed}"
    );
    // Fans in the default room's pre-queue: waiting, with no place yet.
    for user in 101..=105 {
        let reply = system
            .http
            .post("/queue/issue-token", &format!(r#"{{"userId": {user}}}"#))
            .await;
        assert_eq!(reply.json["status"], "PREQUEUE", "{}", reply.json);
    }
    operator
        .wait_for_text(&format!("{default} [data-field=\"waiting\"]"), "5")
        .await;
    assert_every_control_is_named(&operator, "live").await;
    operator.step("console-live").await;

    operator
        .click(&format!("{form} button[data-action=\"clear-schedule\"]"))
        .await;
    operator
        .wait_for_text(&format!("{default} [data-field=\"paused\"]"), "admitting")
        .await;
    assert_eq!(
        operator
            .eval(&format!(
                "return document.querySelector('{default}').dataset.phase;"
            ))
            .await,
        "open"
    );
    operator
        .wait_for(
            "the clearing in the change log",
            "const first = document.querySelector('#changes > li'); \
             return first !== null && /cleared the pre-queue's opening/.test(first.textContent) \
               && /cleared the sale's opening/.test(first.textContent);",
        )
        .await;
    operator.step("schedule-cleared").await;

    browser.finish().await;
}

#[tokio::test]
async fn a_fan_on_a_phone_joining_before_the_waiting_room_opens_is_told_when_it_opens_and_enters_the_prequeue_from_then_without_horizontal_scroll()
 {
    let admin_flag = format!("--admin-token={ADMIN_TOKEN}");
    let (system, base) =
        start_system_at_wall_clock(polling_every_second_or_two(), &[&admin_flag]).await;
    let prequeue_at = queue_now(&system) + 60_000;
    let opens_at = queue_now(&system) + 10 * 60_000;
    operator_patch(
        &system,
        "default",
        serde_json::json!({"prequeueOpensAt": rfc3339(prequeue_at), "opensAt": rfc3339(opens_at)}),
    )
    .await;
    let browser = Browser::start("fan_before_the_room_opens").await;
    let phone = browser.open("phone", PHONE).await;

    join(&phone, &base, 7).await;
    let local_time = phone
        .eval(&format!(
            "return new Date({prequeue_at}).toLocaleTimeString('en-GB', {{hour: '2-digit', minute: '2-digit'}});"
        ))
        .await;
    let local_time = local_time.as_str().expect("a time").to_owned();
    wait_for_sentence(
        &phone,
        "#message",
        &[
            "This waiting room opens today at ",
            &local_time,
            "put in a random order",
        ],
    )
    .await;
    assert_eq!(
        phone
            .eval("return document.querySelector('main#fan').dataset.state;")
            .await,
        "join",
        "the fan stays on the join form"
    );
    assert_no_horizontal_scroll(&phone, "room not open").await;
    phone.step("room-not-open").await;

    // From the pre-queue's opening, the same button lets the fan in.
    system.advance(60_000);
    phone.click("#join").await;
    phone.wait_for_state("fan", "prequeue").await;
    wait_for_sentence(
        &phone,
        "#prequeue-text",
        &["arriving earlier gives no advantage"],
    )
    .await;
    assert_no_horizontal_scroll(&phone, "prequeue").await;
    assert_every_control_is_named(&phone, "prequeue").await;
    phone.step("prequeue-360").await;

    // The refused join, answered 409 ROOM_NOT_OPEN on purpose.
    browser
        .finish_expecting(&["/queue/issue-token - Failed to load resource: the server responded with a status of 409"])
        .await;
}

/// The fan page waits the queue's advice plus up to a second at random, so that fans answered
/// at one instant (after a stall, at an opening) do not all poll again at the next: with an
/// advice of one second, ten intervals between one page's polls each last at least the advice,
/// and spread over more than 200 ms. Without the random part they would lie within a few
/// milliseconds of each other; with it, ten uniform draws spread less than 200 ms about once
/// in 200,000 runs.
#[tokio::test]
async fn a_waiting_fan_polls_again_after_the_advised_second_plus_a_random_part_of_another() {
    let (_system, base) = start_system_with(polling_every_second_or_two(), &[]).await;
    let browser = Browser::start("poll_jitter").await;
    let page = browser.open("fan", DESKTOP).await;
    join(&page, &base, 1).await;
    page.wait_for_state("fan", "waiting").await;
    let starts = page
        .wait_for_within(
            "eleven queue polls",
            "const s = performance.getEntriesByType('resource') \
               .filter(e => e.name.includes('/queue/check-queue')).map(e => e.startTime); \
             return s.length >= 11 && s.slice(0, 11);",
            Duration::from_secs(40),
        )
        .await;
    let starts: Vec<f64> = starts
        .as_array()
        .expect("an array")
        .iter()
        .map(|start| start.as_f64().expect("a number"))
        .collect();
    let intervals: Vec<f64> = starts.windows(2).map(|pair| pair[1] - pair[0]).collect();
    // The advice the page was given: one second (a third of the 6 s grace less the jitter's
    // second, never under one).
    assert!(
        intervals.iter().all(|ms| *ms >= 990.0),
        "an interval shorter than the advice: {intervals:?}"
    );
    let spread = intervals.iter().copied().fold(f64::MIN, f64::max)
        - intervals.iter().copied().fold(f64::MAX, f64::min);
    assert!(
        spread > 200.0,
        "the intervals are not spread by a random part: {intervals:?}"
    );
    browser.finish().await;
}
