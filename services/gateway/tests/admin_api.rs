//! The operator's API over HTTP against the real system: who may open it (tried as an intruder
//! would), what it shows of the line and the sales, and the settings that steer admission.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::{
    Http, Reply, System, assert_error, default_policy,
    jwt::{JwtSystem, jwt_system},
};

const SECRET: &str = "operators-only-0123456789abcdef";
const BEARER: &str = "Bearer operators-only-0123456789abcdef";

async fn system_with_secret() -> System {
    System::start_with(default_policy(), &[&format!("--admin-token={SECRET}")]).await
}

async fn as_operator(http: &Http, method: &str, path: &str, body: Option<&str>) -> Reply {
    with_auth(http, method, path, body, BEARER).await
}

async fn with_auth(
    http: &Http,
    method: &str,
    path: &str,
    body: Option<&str>,
    authorization: &str,
) -> Reply {
    let content_type = body.map(|_| "application/json");
    http.send_with(
        method,
        path,
        body,
        content_type,
        &[("authorization", authorization)],
    )
    .await
}

fn room<'a>(rooms: &'a Reply, name: &str) -> &'a Value {
    rooms.json["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .find(|room| room["room"] == name)
        .unwrap_or_else(|| panic!("no room {name} in {}", rooms.json))
}

async fn join(system: &System, user: i64) -> String {
    let reply = system
        .http
        .post("/queue/issue-token", &json!({ "userId": user }).to_string())
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    reply.json["token"].as_str().unwrap().to_owned()
}

async fn entry(system: &System, token: &str) -> Value {
    let reply = system
        .http
        .get(&format!("/queue/check-queue?token={token}"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    reply.json
}

/// One admission step a second later on the queue's manual clock; how many it admitted.
async fn step(system: &System) -> u64 {
    system.advance(1_000);
    system.admit().await
}

/// The room's first step: it starts the admission bucket empty, so it admits nobody, and the
/// steps after it admit at the rate in effect.
async fn first_step(system: &System) {
    assert_eq!(system.admit().await, 0);
}

#[tokio::test]
async fn trusted_mode_without_an_admin_token_keeps_the_operators_api_closed() {
    let system = System::start(default_policy()).await;
    assert_error(&system.http.get("/admin/rooms").await, 403, "ADMIN_CLOSED");
    // A made-up bearer does not open it either.
    let pause = as_operator(
        &system.http,
        "PATCH",
        "/admin/rooms/default",
        Some(r#"{"paused": true}"#),
    )
    .await;
    assert_error(&pause, 403, "ADMIN_CLOSED");
}

#[tokio::test]
async fn without_the_admin_secret_every_admin_route_is_401_and_nothing_changes() {
    let system = system_with_secret().await;
    let pause = Some(r#"{"paused": true}"#);
    for (method, path, body) in [
        ("GET", "/admin/rooms", None),
        ("GET", "/admin/rooms/default/history", None),
        ("GET", "/admin/changes", None),
        ("PATCH", "/admin/rooms/default", pause),
    ] {
        let none = system
            .http
            .send_with(method, path, body, body.map(|_| "application/json"), &[])
            .await;
        assert_error(&none, 401, "AUTH_REQUIRED");
        for wrong in [
            "Bearer operators-only-0123456789abcdeX",
            "Bearer operators-only",
            "Basic b3BlcmF0b3JzOm9ubHk=",
            "Bearer ",
        ] {
            let refused = with_auth(&system.http, method, path, body, wrong).await;
            assert_eq!(
                refused.status, 401,
                "{method} {path} with {wrong:?}: {}",
                refused.json
            );
        }
    }
    let rooms = as_operator(&system.http, "GET", "/admin/rooms", None).await;
    assert_eq!(rooms.status, 200, "{}", rooms.json);
    assert_eq!(room(&rooms, "default")["settings"]["paused"], false);
    let changes = as_operator(&system.http, "GET", "/admin/changes", None).await;
    assert_eq!(changes.json["changes"], json!([]));
}

#[tokio::test]
async fn in_jwt_mode_only_a_verified_token_with_the_admin_role_opens_the_operators_api() {
    let jwt: JwtSystem = jwt_system(&[]).await;
    let http = &jwt.system.http;
    assert_error(&http.get("/admin/rooms").await, 401, "AUTH_REQUIRED");
    assert_error(
        &with_auth(http, "GET", "/admin/rooms", None, &jwt.bearer(5)).await,
        403,
        "ADMIN_ROLE_REQUIRED",
    );
    // The admin role claimed by a token another key signed.
    let stranger = kit::dev_identity::DevKey::generate().unwrap();
    let forged = stranger
        .mint(5, true, std::time::Duration::from_secs(600))
        .unwrap();
    let refused = with_auth(
        http,
        "GET",
        "/admin/rooms",
        None,
        &format!("Bearer {forged}"),
    )
    .await;
    assert_error(&refused, 401, "AUTH_INVALID");

    let operator = jwt.bearer_as(9, true);
    let rooms = with_auth(http, "GET", "/admin/rooms", None, &operator).await;
    assert_eq!(rooms.status, 200, "{}", rooms.json);
    let paused = with_auth(
        http,
        "PATCH",
        "/admin/rooms/default",
        Some(r#"{"paused": true}"#),
        &operator,
    )
    .await;
    assert_eq!(paused.status, 200, "{}", paused.json);
    let changes = with_auth(http, "GET", "/admin/changes", None, &operator).await;
    assert_eq!(
        changes.json["changes"][0]["actor"], "user:9",
        "{}",
        changes.json
    );
}

#[tokio::test]
async fn pausing_a_room_stops_admission_and_tells_its_waiters_and_resuming_admits_them() {
    let system = system_with_secret().await;
    let token = join(&system, 41).await;
    assert_eq!(entry(&system, &token).await["status"], "WAITING");
    first_step(&system).await;

    let paused = as_operator(
        &system.http,
        "PATCH",
        "/admin/rooms/default",
        Some(r#"{"paused": true}"#),
    )
    .await;
    assert_eq!(paused.status, 200, "{}", paused.json);
    assert_eq!(paused.json["room"], "default");
    assert_eq!(paused.json["settings"]["paused"], true);
    assert_eq!(paused.json["settings"]["overridden"], true);
    for _ in 0..3 {
        assert_eq!(step(&system).await, 0, "a paused room admits nobody");
    }
    let waiting = entry(&system, &token).await;
    assert_eq!(
        (&waiting["status"], &waiting["position"], &waiting["paused"]),
        (&json!("WAITING"), &json!(1), &json!(true)),
        "{waiting}"
    );

    let resumed = as_operator(
        &system.http,
        "PATCH",
        "/admin/rooms/default",
        Some(r#"{"paused": false}"#),
    )
    .await;
    assert_eq!(
        resumed.json["settings"]["paused"], false,
        "{}",
        resumed.json
    );
    assert_eq!(step(&system).await, 1);
    let admitted = entry(&system, &token).await;
    assert_eq!(admitted["status"], "ACTIVE", "{admitted}");
    assert!(admitted.get("paused").is_none(), "{admitted}");

    let changes = as_operator(&system.http, "GET", "/admin/changes", None).await;
    let changes = changes.json["changes"].as_array().unwrap().clone();
    assert_eq!(changes.len(), 2);
    assert_eq!(
        (&changes[0]["paused"], &changes[1]["paused"]),
        (&json!(false), &json!(true)),
        "newest first"
    );
    assert!(
        changes
            .iter()
            .all(|c| c["actor"] == "admin-token" && c["room"] == "default")
    );
}

#[tokio::test]
async fn a_rate_set_by_the_operator_is_the_rate_of_the_next_steps() {
    let system = system_with_secret().await;
    for user in 1..=10 {
        join(&system, 100 + user).await;
    }
    first_step(&system).await;
    let set = as_operator(
        &system.http,
        "PATCH",
        "/admin/rooms/default",
        Some(r#"{"admissionRate": 3, "activeCap": 5}"#),
    )
    .await;
    assert_eq!(set.status, 200, "{}", set.json);
    assert_eq!(set.json["settings"]["admissionRate"], 3.0);
    assert_eq!(set.json["settings"]["activeCap"], 5);
    assert_eq!(
        set.json["options"].as_array().unwrap().len(),
        10,
        "{}",
        set.json
    );
    assert_eq!(step(&system).await, 3, "three a second");
    assert_eq!(step(&system).await, 2, "then the cap of five");
    assert_eq!(step(&system).await, 0);
    let rooms = as_operator(&system.http, "GET", "/admin/rooms", None).await;
    let default = room(&rooms, "default");
    assert_eq!(
        (&default["waiting"], &default["active"]),
        (&json!(5), &json!(5))
    );
    assert_eq!(default["admittedTotal"], 5);
}

#[tokio::test]
async fn the_room_list_counts_each_options_free_held_and_sold_seats() {
    let system = system_with_secret().await;
    let tokens = system.active_tokens([51, 52]).await;
    let hold = |token: &str, user: i64, seat: i64| {
        json!({"token": token, "userId": user, "concertOptionId": 1, "seatId": seat}).to_string()
    };
    let held = system
        .http
        .post("/api/reserve", &hold(&tokens[0].1, 51, 1))
        .await;
    assert_eq!(held.status, 303, "{}", held.json);
    let sold = system
        .http
        .post("/api/reserve", &hold(&tokens[1].1, 52, 2))
        .await;
    assert_eq!(sold.status, 303, "{}", sold.json);
    let charge = system
        .http
        .post("/api/users/52/balance/charge", r#"{"amount": 1000000}"#)
        .await;
    assert_eq!(charge.status, 200, "{}", charge.json);
    let pay =
        json!({"token": tokens[1].1, "userId": 52, "reservationId": sold.json["reservationId"]});
    let paid = system.http.post("/api/payments", &pay.to_string()).await;
    assert_eq!(paid.status, 200, "{}", paid.json);

    let rooms = as_operator(&system.http, "GET", "/admin/rooms", None).await;
    assert_eq!(rooms.status, 200, "{}", rooms.json);
    let options = room(&rooms, "default")["options"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(options.len(), 10, "the demo concert's ten options");
    let first = options.iter().find(|o| o["concertOptionId"] == 1).unwrap();
    assert_eq!(
        (
            &first["seats"],
            &first["free"],
            &first["held"],
            &first["sold"]
        ),
        (&json!(50), &json!(48), &json!(1), &json!(1)),
        "{first}"
    );
    let untouched = options.iter().find(|o| o["concertOptionId"] == 2).unwrap();
    assert_eq!(
        (&untouched["free"], &untouched["held"]),
        (&json!(50), &json!(0))
    );
}

#[tokio::test]
async fn a_concerts_own_room_is_listed_and_steered_apart_from_the_default_room() {
    let system = system_with_secret().await;
    catalog::testing::give_own_room(system.catalog_db(), 1)
        .await
        .unwrap();
    let rooms = as_operator(&system.http, "GET", "/admin/rooms", None).await;
    let own = room(&rooms, "concert-1");
    assert_eq!(
        (&own["concertId"], &own["title"]),
        (&json!(1), &json!("Concert 1"))
    );
    assert_eq!(own["options"].as_array().unwrap().len(), 10);
    assert_eq!(room(&rooms, "default")["options"], json!([]));

    let paused = as_operator(
        &system.http,
        "PATCH",
        "/admin/rooms/concert-1",
        Some(r#"{"paused": true}"#),
    )
    .await;
    assert_eq!(paused.status, 200, "{}", paused.json);
    // The answer is the room as the list shows it: its title and its own concert's options.
    assert_eq!(paused.json["title"], "Concert 1", "{}", paused.json);
    assert_eq!(paused.json["options"].as_array().unwrap().len(), 10);
    let rooms = as_operator(&system.http, "GET", "/admin/rooms", None).await;
    assert_eq!(room(&rooms, "concert-1")["settings"]["paused"], true);
    assert_eq!(room(&rooms, "default")["settings"]["paused"], false);
}

#[tokio::test]
async fn bad_rooms_and_settings_are_4xx_with_their_codes() {
    let system = system_with_secret().await;
    let patch = |path: &'static str, body: &'static str| {
        let http = system.http.clone();
        async move { as_operator(&http, "PATCH", path, Some(body)).await }
    };
    assert_error(
        &patch("/admin/rooms/lobby", r#"{"paused": true}"#).await,
        400,
        "INVALID_ROOM",
    );
    assert_error(
        &patch("/admin/rooms/concert-0", r#"{"paused": true}"#).await,
        400,
        "INVALID_ROOM",
    );
    assert_error(
        &patch("/admin/rooms/concert-987654", r#"{"paused": true}"#).await,
        404,
        "ROOM_NOT_FOUND",
    );
    // Concert 1 waits in the default room: it has no room of its own to steer.
    assert_error(
        &patch("/admin/rooms/concert-1", r#"{"paused": true}"#).await,
        404,
        "ROOM_NOT_FOUND",
    );
    assert_error(
        &patch("/admin/rooms/default", r#"{"admissionRate": -1}"#).await,
        400,
        "INVALID_ROOM_SETTINGS",
    );
    assert_error(
        &patch("/admin/rooms/default", r#"{"activeCap": 4294967296}"#).await,
        400,
        "INVALID_ROOM_SETTINGS",
    );
    // No rate and no cap: nobody would ever wait, so the queue refuses it.
    assert_error(
        &patch(
            "/admin/rooms/default",
            r#"{"admissionRate": 0, "activeCap": 0}"#,
        )
        .await,
        400,
        "INVALID_ROOM_SETTINGS",
    );
    assert_error(
        &patch("/admin/rooms/default", r#"{}"#).await,
        400,
        "INVALID_BODY",
    );
    assert_error(
        &patch("/admin/rooms/default", r#"{"pause": true}"#).await,
        400,
        "INVALID_BODY",
    );
    assert_error(
        &patch("/admin/rooms/default", r#"{"paused": "#).await,
        400,
        "INVALID_JSON",
    );
    let limit = as_operator(&system.http, "GET", "/admin/changes?limit=0", None).await;
    assert_error(&limit, 400, "INVALID_LIMIT");
    // None of it changed anything.
    let changes = as_operator(&system.http, "GET", "/admin/changes", None).await;
    assert_eq!(changes.json["changes"], json!([]));
}

#[tokio::test]
async fn a_rooms_history_gives_the_line_and_its_rates_second_by_second() {
    let system = system_with_secret().await;
    for user in 1..=30 {
        join(&system, 200 + user).await;
    }
    first_step(&system).await;
    let set = as_operator(
        &system.http,
        "PATCH",
        "/admin/rooms/default",
        Some(r#"{"admissionRate": 10}"#),
    )
    .await;
    assert_eq!(set.status, 200, "{}", set.json);
    for _ in 0..3 {
        assert_eq!(step(&system).await, 10);
    }
    let history = as_operator(&system.http, "GET", "/admin/rooms/default/history", None).await;
    assert_eq!(history.status, 200, "{}", history.json);
    assert_eq!(history.json["room"], "default");
    let samples = history.json["samples"].as_array().unwrap();
    assert!(!samples.is_empty(), "{}", history.json);
    let last = samples.last().unwrap();
    assert_eq!(last["admittedPerSecond"], 10.0, "{}", history.json);
    assert_eq!(last["waiting"], 0, "{}", history.json);
}

#[tokio::test]
async fn the_room_list_shows_this_gateways_routes_by_template_with_their_rate_and_latency() {
    let system = system_with_secret().await;
    for user in 1..=5 {
        join(&system, 300 + user).await;
    }
    let rooms = as_operator(&system.http, "GET", "/admin/rooms", None).await;
    assert_eq!(rooms.status, 200, "{}", rooms.json);
    let routes = rooms.json["routes"].as_array().unwrap();
    let issue = routes
        .iter()
        .find(|route| route["route"] == "POST /queue/issue-token")
        .unwrap_or_else(|| panic!("no issue-token route in {}", rooms.json));
    // Five requests over the (at most 10 s) window since this gateway started.
    assert!(
        issue["requestsPerSecond"].as_f64().unwrap() >= 0.5,
        "{issue}"
    );
    assert!(issue["p50Ms"].as_f64().unwrap() > 0.0, "{issue}");
    assert!(
        issue["p99Ms"].as_f64().unwrap() >= issue["p50Ms"].as_f64().unwrap(),
        "{issue}"
    );
    assert!(
        routes
            .iter()
            .all(|route| !route["route"].as_str().unwrap().contains("token=")),
        "templates, never raw paths: {}",
        rooms.json
    );
    let history = as_operator(&system.http, "GET", "/admin/routes/history", None).await;
    assert_eq!(history.status, 200, "{}", history.json);
    assert!(history.json["routes"].is_array(), "{}", history.json);
    let refused = system.http.get("/admin/routes/history").await;
    assert_error(&refused, 401, "AUTH_REQUIRED");
}

#[tokio::test]
async fn a_revoked_token_is_refused_on_its_next_call_and_only_an_operator_can_revoke() {
    let system = system_with_secret().await;
    let tokens = system.active_tokens([61, 62]).await;
    let (abuser, token) = (&tokens[0].0, tokens[0].1.clone());
    let path = format!("/admin/tokens/{token}");

    // A fan cannot revoke someone's token, not even with a made-up bearer.
    assert_error(
        &system
            .http
            .send_with("DELETE", &path, None, None, &[])
            .await,
        401,
        "AUTH_REQUIRED",
    );
    assert_error(
        &with_auth(
            &system.http,
            "DELETE",
            &path,
            None,
            "Bearer not-the-secret-at-all-000000",
        )
        .await,
        401,
        "AUTH_INVALID",
    );
    assert_eq!(entry(&system, &token).await["status"], "ACTIVE");

    let revoked = as_operator(&system.http, "DELETE", &path, None).await;
    assert_eq!(revoked.status, 200, "{}", revoked.json);
    assert_eq!(revoked.json, json!({"token": token, "revoked": true}));
    let check = system
        .http
        .get(&format!("/queue/check-queue?token={token}"))
        .await;
    assert_error(&check, 401, "TOKEN_NOT_FOUND");
    let hold = json!({"token": token, "userId": abuser, "concertOptionId": 1, "seatId": 1});
    assert_error(
        &system.http.post("/api/reserve", &hold.to_string()).await,
        401,
        "TOKEN_NOT_FOUND",
    );
    // The other fan is untouched, and revoking again is harmless.
    assert_eq!(entry(&system, &tokens[1].1).await["status"], "ACTIVE");
    let again = as_operator(&system.http, "DELETE", &path, None).await;
    assert_eq!(again.json["revoked"], false, "{}", again.json);
    assert_error(
        &as_operator(&system.http, "DELETE", "/admin/tokens/not-a-token", None).await,
        400,
        "INVALID_TOKEN",
    );
}

/// RFC 3339 of an instant this many ms after the tests' start on the manual clock.
fn at(after_start_ms: i64) -> String {
    gateway::wire::rfc3339(support::START_MS + after_start_ms).unwrap()
}

#[tokio::test]
async fn an_operator_schedules_a_rooms_opening_sees_its_phase_move_with_the_clock_and_clears_it() {
    let system = system_with_secret().await;
    let patch = json!({
        // Any offset is read; the view answers UTC.
        "prequeueOpensAt": "2027-01-15T09:01:00+01:00",
        "opensAt": at(120_000),
    });
    let set = as_operator(
        &system.http,
        "PATCH",
        "/admin/rooms/default",
        Some(&patch.to_string()),
    )
    .await;
    assert_eq!(set.status, 200, "{}", set.json);
    assert_eq!(
        (
            &set.json["phase"],
            &set.json["prequeueOpensAt"],
            &set.json["opensAt"]
        ),
        (&json!("not-open"), &json!(at(60_000)), &json!(at(120_000))),
        "{}",
        set.json
    );
    let listed = as_operator(&system.http, "GET", "/admin/rooms", None).await;
    assert_eq!(room(&listed, "default")["phase"], "not-open");
    // The admitter's step says why nobody is admitted.
    first_step(&system).await;
    let listed = as_operator(&system.http, "GET", "/admin/rooms", None).await;
    assert_eq!(
        room(&listed, "default")["outflowLimit"],
        "not-open",
        "{}",
        listed.json
    );

    system.advance(60_000);
    let listed = as_operator(&system.http, "GET", "/admin/rooms", None).await;
    assert_eq!(room(&listed, "default")["phase"], "prequeue");
    system.advance(60_000);
    let listed = as_operator(&system.http, "GET", "/admin/rooms", None).await;
    assert_eq!(
        room(&listed, "default")["phase"],
        "open",
        "past its opening"
    );

    let cleared = as_operator(
        &system.http,
        "PATCH",
        "/admin/rooms/default",
        Some(r#"{"prequeueOpensAt": null, "opensAt": null}"#),
    )
    .await;
    assert_eq!(cleared.status, 200, "{}", cleared.json);
    assert_eq!(cleared.json["phase"], "open");
    assert!(
        cleared.json.get("prequeueOpensAt").is_none() && cleared.json.get("opensAt").is_none(),
        "an unset schedule is absent: {}",
        cleared.json
    );
}

#[tokio::test]
async fn the_change_log_shows_a_schedule_set_and_cleared_and_leaves_it_out_of_other_changes() {
    let system = system_with_secret().await;
    for body in [
        json!({"prequeueOpensAt": at(60_000), "opensAt": at(120_000)}),
        json!({"paused": true}),
        json!({"prequeueOpensAt": null}),
    ] {
        let reply = as_operator(
            &system.http,
            "PATCH",
            "/admin/rooms/default",
            Some(&body.to_string()),
        )
        .await;
        assert_eq!(reply.status, 200, "{body}: {}", reply.json);
    }
    let changes = as_operator(&system.http, "GET", "/admin/changes", None).await;
    let changes = changes.json["changes"].as_array().unwrap().clone();
    assert_eq!(changes.len(), 3, "{changes:?}");
    let (cleared, paused, scheduled) = (&changes[0], &changes[1], &changes[2]);
    assert_eq!(
        (&scheduled["prequeueOpensAt"], &scheduled["opensAt"]),
        (&json!(at(60_000)), &json!(at(120_000))),
        "{scheduled}"
    );
    assert!(
        paused.get("prequeueOpensAt").is_none() && paused.get("opensAt").is_none(),
        "a change that left the schedule says nothing of it: {paused}"
    );
    assert_eq!(
        cleared.get("prequeueOpensAt"),
        Some(&Value::Null),
        "cleared is null: {cleared}"
    );
    assert!(cleared.get("opensAt").is_none(), "{cleared}");
    // The room kept its opening; its pre-queue opens now.
    let rooms = as_operator(&system.http, "GET", "/admin/rooms", None).await;
    let default = room(&rooms, "default");
    assert_eq!(
        (&default["phase"], &default["opensAt"]),
        (&json!("prequeue"), &json!(at(120_000)))
    );
    assert!(default.get("prequeueOpensAt").is_none(), "{default}");
}

#[tokio::test]
async fn bad_schedules_are_refused_with_invalid_room_settings_and_change_nothing() {
    let system = system_with_secret().await;
    let patch = |body: Value| {
        let http = system.http.clone();
        async move {
            as_operator(
                &http,
                "PATCH",
                "/admin/rooms/default",
                Some(&body.to_string()),
            )
            .await
        }
    };
    // Not an instant: 400, whatever the other field says.
    for bad in [
        json!({"opensAt": "tomorrow"}),
        json!({"opensAt": "2027-01-15T10:00"}),
        json!({"opensAt": "2027-01-15"}),
        json!({"opensAt": "2027-02-30T10:00:00Z"}),
        json!({"opensAt": "1969-07-20T20:17:00Z"}),
        json!({"prequeueOpensAt": "", "opensAt": at(60_000)}),
    ] {
        let reply = patch(bad.clone()).await;
        assert_error(&reply, 400, "INVALID_ROOM_SETTINGS");
        assert!(
            reply.json["message"].as_str().unwrap().contains("RFC 3339"),
            "{bad}: {}",
            reply.json
        );
    }
    // Not a string at all is a malformed body, as for every other field.
    assert_error(
        &patch(json!({"opensAt": 1_800_000_000_000_i64})).await,
        400,
        "INVALID_BODY",
    );
    // In one patch: the opening not after the pre-queue, or a pre-queue that never opens.
    for bad in [
        json!({"prequeueOpensAt": at(60_000), "opensAt": at(60_000)}),
        json!({"prequeueOpensAt": at(60_000), "opensAt": at(30_000)}),
        json!({"prequeueOpensAt": at(60_000), "opensAt": null}),
    ] {
        assert_error(&patch(bad).await, 400, "INVALID_ROOM_SETTINGS");
    }
    // Against the room's own schedule, the queue finds it: a conflict with its state.
    let set = patch(json!({"prequeueOpensAt": at(60_000), "opensAt": at(120_000)})).await;
    assert_eq!(set.status, 200, "{}", set.json);
    assert_error(
        &patch(json!({"opensAt": at(60_000)})).await,
        409,
        "INVALID_ROOM_SETTINGS",
    );
    assert_error(
        &patch(json!({"opensAt": null})).await,
        409,
        "INVALID_ROOM_SETTINGS",
    );
    let changes = as_operator(&system.http, "GET", "/admin/changes", None).await;
    assert_eq!(
        changes.json["changes"].as_array().unwrap().len(),
        1,
        "only the good schedule was applied: {}",
        changes.json
    );
    let rooms = as_operator(&system.http, "GET", "/admin/rooms", None).await;
    assert_eq!(room(&rooms, "default")["opensAt"], at(120_000));
}

#[tokio::test]
async fn the_room_list_shows_the_rate_in_effect_and_why_the_seats_left_and_the_idle_give_backs() {
    let system = System::start_with(
        queue::Policy {
            admission_rate: 10.0,
            admitted_idle: std::time::Duration::from_secs(120),
            ..default_policy()
        },
        &[&format!("--admin-token={SECRET}")],
    )
    .await;
    let mut tokens = Vec::new();
    for user in 1..=30 {
        tokens.push(join(&system, 700 + user).await);
    }
    first_step(&system).await;
    let slow = queue::outflow::Pace {
        share: 0.35,
        limit: queue::outflow::OutflowLimit::HoldLatency,
        detail: "hold latency 420 ms over the 250 ms target".into(),
    };
    let seats = queue::domain::RoomSeats {
        free: 12,
        held: 3,
        sold: 35,
    };
    system.advance(1_000);
    let admission = system
        .queue_store
        .admit_with(queue::domain::Room::Default, &slow, Some(seats))
        .await
        .unwrap();
    assert_eq!(admission.admitted, 3, "3.5 a second");
    let rooms = as_operator(&system.http, "GET", "/admin/rooms", None).await;
    let default = room(&rooms, "default");
    assert_eq!(default["settings"]["admissionRate"], 10.0, "{default}");
    assert_eq!(default["admissionRateInEffect"], 3.5, "{default}");
    assert_eq!(default["outflowLimit"], "hold-latency");
    assert_eq!(
        default["outflowDetail"],
        "hold latency 420 ms over the 250 ms target"
    );
    assert_eq!(default["seats"], json!({"free": 12, "held": 3, "sold": 35}));
    assert_eq!(default["idledTotal"], 0);

    // The three admitted (the head of the line) make no reservation call for the idle limit:
    // they give their slots back at the next step. Those still waiting keep polling.
    for advance in [0, 60_000, 60_000] {
        system.advance(advance);
        for token in &tokens[3..] {
            assert_eq!(entry(&system, token).await["status"], "WAITING");
        }
    }
    system
        .queue_store
        .admit_with(
            queue::domain::Room::Default,
            &queue::outflow::Pace::ceiling(),
            None,
        )
        .await
        .unwrap();
    let rooms = as_operator(&system.http, "GET", "/admin/rooms", None).await;
    let default = room(&rooms, "default");
    assert_eq!(default["idledTotal"], 3, "{default}");
    assert_eq!(default["outflowLimit"], "none", "{default}");
    assert_eq!(default["admissionRateInEffect"], 10.0, "{default}");
    assert_eq!(
        default["seats"]["free"], 12,
        "the last seats seen: {default}"
    );
}
