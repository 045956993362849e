//! The queue routes of the HTTP contract, through the real gateway and queue service.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod support;

use std::{collections::HashSet, time::Duration};

use support::{System, assert_error, default_policy};

#[tokio::test]
async fn issue_token_answers_the_original_shape_and_is_idempotent_per_user() {
    let system = System::start(default_policy()).await;
    let first = system
        .http
        .post("/queue/issue-token", r#"{"userId": 12345}"#)
        .await;
    assert_eq!(first.status, 200, "{}", first.json);
    let token = first.json["token"].as_str().expect("token");
    assert!(uuid::Uuid::parse_str(token).is_ok());
    assert_eq!(first.json["status"], "WAITING");
    assert_eq!(first.json["position"], 1);
    assert!(first.json["etaSeconds"].as_u64().is_some());

    let again = system
        .http
        .post("/queue/issue-token", r#"{"userId": 12345}"#)
        .await;
    assert_eq!(again.json["token"], token);
    let other = system
        .http
        .post("/queue/issue-token", r#"{"userId": 2, "concertId": 1}"#)
        .await;
    assert_eq!(other.status, 200);
    assert_ne!(other.json["token"], token);
    // Concert 1 (the demo data) belongs to the shared room: same line, second place.
    assert_eq!(other.json["concertId"], serde_json::Value::Null);
    assert_eq!(other.json["position"], 2);
}

#[tokio::test]
async fn concurrent_issues_through_http_get_one_token_per_user_and_distinct_positions() {
    let system = System::start_queue_only(default_policy()).await;
    let same_user = futures::future::join_all((0..100).map(|_| {
        system
            .http
            .post("/queue/issue-token", r#"{"userId": 100000}"#)
    }))
    .await;
    let tokens: HashSet<_> = same_user.iter().map(|r| r.json["token"].clone()).collect();
    assert_eq!(tokens.len(), 1);

    let bodies: Vec<String> = (1..=100)
        .map(|user| format!(r#"{{"userId": {user}}}"#))
        .collect();
    let users = futures::future::join_all(
        bodies
            .iter()
            .map(|body| system.http.post("/queue/issue-token", body)),
    )
    .await;
    let positions: HashSet<u64> = users
        .iter()
        .map(|r| r.json["position"].as_u64().expect("position"))
        .collect();
    assert_eq!(positions, (2..=101).collect());
}

#[tokio::test]
async fn check_queue_walks_from_waiting_to_active_to_expired() {
    let system = System::start_queue_only(default_policy()).await;
    let issued = system
        .http
        .post("/queue/issue-token", r#"{"userId": 1}"#)
        .await;
    let token = issued.json["token"].as_str().expect("token").to_owned();
    let path = format!("/queue/check-queue?token={token}");

    let waiting = system.http.get(&path).await;
    assert_eq!(
        (waiting.status, &waiting.json["status"]),
        (200, &"WAITING".into())
    );
    assert_eq!(waiting.json["position"], 1);
    assert!(waiting.json.get("activeUntil").is_none());

    system.admit().await;
    system.advance(100);
    assert_eq!(system.admit().await, 1);
    let active = system.http.get(&path).await;
    assert_eq!(active.json["status"], "ACTIVE", "{}", active.json);
    assert_eq!(active.json["position"], 0);
    assert_eq!(active.json["activeUntil"], "2027-01-15T08:10:00.1Z");

    system.advance(600_000);
    assert_error(&system.http.get(&path).await, 401, "TOKEN_EXPIRED");
}

#[tokio::test]
async fn unknown_malformed_and_missing_tokens_are_401_as_on_reserve() {
    let system = System::start_queue_only(default_policy()).await;
    let unknown = format!("/queue/check-queue?token={}", uuid::Uuid::new_v4());
    assert_error(&system.http.get(&unknown).await, 401, "TOKEN_NOT_FOUND");
    assert_error(
        &system.http.get("/queue/check-queue?token=abc").await,
        401,
        "TOKEN_NOT_FOUND",
    );
    assert_error(
        &system.http.get("/queue/check-queue").await,
        401,
        "TOKEN_MISSING",
    );
    assert_error(
        &system.http.get("/queue/check-queue?token=").await,
        401,
        "TOKEN_MISSING",
    );
    assert_error(
        &system
            .http
            .get(&format!(
                "/queue/check-queue?token={0}&token={0}",
                uuid::Uuid::new_v4()
            ))
            .await,
        400,
        "INVALID_QUERY",
    );
}

#[tokio::test]
async fn bad_bodies_are_400_json_never_500() {
    let system = System::start_queue_only(default_policy()).await;
    let cases: &[(&str, &str)] = &[
        ("", "INVALID_JSON"),
        ("{", "INVALID_JSON"),
        ("not json", "INVALID_JSON"),
        ("{}", "INVALID_BODY"),
        ("[]", "INVALID_BODY"),
        ("null", "INVALID_BODY"),
        (r#"{"userId": "12345"}"#, "INVALID_BODY"),
        (r#"{"userId": 1.5}"#, "INVALID_BODY"),
        (r#"{"userId": true}"#, "INVALID_BODY"),
        (r#"{"userId": 99999999999999999999}"#, "INVALID_BODY"),
        (r#"{"userId": 1e30}"#, "INVALID_BODY"),
        (r#"{"userId": -1}"#, "INVALID_USER_ID"),
        (r#"{"userId": 0}"#, "INVALID_USER_ID"),
        (r#"{"userId": 9007199254740992}"#, "INVALID_USER_ID"),
        (r#"{"userId": 1, "concertId": -3}"#, "INVALID_CONCERT_ID"),
        (r#"{"userId": 1, "concertId": "x"}"#, "INVALID_BODY"),
    ];
    for (body, code) in cases {
        let reply = system.http.post("/queue/issue-token", body).await;
        assert_eq!(reply.json["code"], *code, "body {body:?} -> {}", reply.json);
        assert_error(&reply, 400, code);
    }
    // The original clients' body without a Content-Type still works.
    let untyped = system
        .http
        .send("POST", "/queue/issue-token", Some(r#"{"userId": 5}"#), None)
        .await;
    assert_eq!(untyped.status, 200);
    // An oversized body is refused, as JSON.
    let huge = format!(r#"{{"userId": 1, "pad": "{}"}}"#, "x".repeat(100_000));
    assert_error(
        &system.http.post("/queue/issue-token", &huge).await,
        413,
        "PAYLOAD_TOO_LARGE",
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let system = System::start_queue_only(default_policy()).await;
    assert_error(&system.http.get("/nope").await, 404, "NOT_FOUND");
    assert_error(
        &system.http.get("/queue/issue-token").await,
        405,
        "METHOD_NOT_ALLOWED",
    );
}

#[tokio::test]
async fn health_and_readiness() {
    let system = System::start(default_policy()).await;
    let live = system.http.get("/healthz").await;
    assert_eq!((live.status, &live.json["status"]), (200, &"UP".into()));
    let ready = system.http.get("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.json);
    assert_eq!(ready.json["dependencies"]["queue"], "UP");
}

#[tokio::test]
async fn a_down_queue_service_is_503_json_and_not_ready() {
    let http = support::Http::new(support::start_gateway(support::NO_BACKEND, &[]).await);
    let reply = http.post("/queue/issue-token", r#"{"userId": 1}"#).await;
    assert_error(&reply, 503, "SERVICE_UNAVAILABLE");
    let ready = http.get("/readyz").await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json["dependencies"]["queue"], "DOWN");
    assert_eq!(http.get("/healthz").await.status, 200);
}

mod slow_queue {
    use std::time::Duration;

    use ticketing_proto::queue::v1::{self as pb, queue_service_server::QueueService};
    use tonic::{Request, Response, Status};

    /// A queue service that answers far too late: the gateway's deadline must cut it off.
    pub struct SlowQueue;

    #[tonic::async_trait]
    impl QueueService for SlowQueue {
        async fn issue_token(
            &self,
            _: Request<pb::IssueTokenRequest>,
        ) -> Result<Response<pb::QueueEntry>, Status> {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Err(Status::internal("too late"))
        }
        async fn get_status(
            &self,
            _: Request<pb::GetStatusRequest>,
        ) -> Result<Response<pb::QueueEntry>, Status> {
            Err(Status::unimplemented("slow queue"))
        }
        async fn validate_token(
            &self,
            _: Request<pb::ValidateTokenRequest>,
        ) -> Result<Response<pb::ValidateTokenResponse>, Status> {
            Err(Status::unimplemented("slow queue"))
        }
        async fn release_token(
            &self,
            _: Request<pb::ReleaseTokenRequest>,
        ) -> Result<Response<pb::ReleaseTokenResponse>, Status> {
            Err(Status::unimplemented("slow queue"))
        }
        crate::support::no_operator_rpcs!();
    }
}

#[tokio::test]
async fn a_slow_queue_service_is_cut_off_by_the_deadline_with_504_json() {
    let (addr, incoming) = kit::grpc::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let server = tonic::transport::Server::builder()
        .add_service(
            ticketing_proto::queue::v1::queue_service_server::QueueServiceServer::new(
                slow_queue::SlowQueue,
            ),
        )
        .serve_with_incoming(incoming);
    tokio::spawn(server);
    let http = support::Http::new(
        support::start_gateway(
            &format!("http://{addr}"),
            &["--grpc-timeout-ms=200", "--request-timeout-ms=2000"],
        )
        .await,
    );
    let started = std::time::Instant::now();
    let reply = http.post("/queue/issue-token", r#"{"userId": 1}"#).await;
    assert_error(&reply, 504, "UPSTREAM_TIMEOUT");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn waiters_are_told_to_poll_less_often_the_further_back_they_stand() {
    // 1 admission/s: the 300th in line expects ~300 s, the first ~1 s.
    let system = System::start_queue_only(queue::Policy {
        admission_rate: 1.0,
        ..default_policy()
    })
    .await;
    let mut replies = Vec::new();
    for user in 1..=300 {
        replies.push(
            system
                .http
                .post("/queue/issue-token", &format!(r#"{{"userId": {user}}}"#))
                .await,
        );
    }
    let poll_after = |reply: &support::Reply| reply.json["pollAfterSeconds"].as_u64().unwrap();
    let front = poll_after(&replies[0]);
    let back = poll_after(&replies[299]);
    assert_eq!(front, 1, "{}", replies[0].json);
    // Half of ~300 s, capped at a third of the 60 s grace less the clients' second of jitter.
    assert_eq!(back, 19, "{}", replies[299].json);
    let token = replies[299].json["token"].as_str().unwrap();
    let status = system
        .http
        .get(&format!("/queue/check-queue?token={token}"))
        .await;
    assert_eq!(status.json["pollAfterSeconds"], 19, "{}", status.json);

    system.admit().await;
    system.advance(1_000);
    assert_eq!(system.admit().await, 1);
    let head = replies[0].json["token"].as_str().unwrap();
    let active = system
        .http
        .get(&format!("/queue/check-queue?token={head}"))
        .await;
    assert_eq!(active.json["status"], "ACTIVE", "{}", active.json);
    assert!(
        active.json.get("pollAfterSeconds").is_none(),
        "{}",
        active.json
    );
}

const ADMIN_SECRET: &str = "queue-routes-operator-0123456789abcdef";

/// A system whose operator can schedule rooms (PATCH /admin/rooms/{room}).
async fn system_with_operator() -> System {
    System::start_with(
        default_policy(),
        &[&format!("--admin-token={ADMIN_SECRET}")],
    )
    .await
}

/// RFC 3339 of an instant this many ms after the tests' start on the manual clock.
fn at(after_start_ms: i64) -> String {
    gateway::wire::rfc3339(support::START_MS + after_start_ms).unwrap()
}

async fn schedule_default_room(system: &System, body: serde_json::Value) {
    let reply = system
        .http
        .send_with(
            "PATCH",
            "/admin/rooms/default",
            Some(&body.to_string()),
            Some("application/json"),
            &[("authorization", &format!("Bearer {ADMIN_SECRET}"))],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
}

async fn join(system: &System, user: i64) -> support::Reply {
    system
        .http
        .post("/queue/issue-token", &format!(r#"{{"userId": {user}}}"#))
        .await
}

async fn check(system: &System, token: &serde_json::Value) -> support::Reply {
    let token = token.as_str().expect("a token");
    system
        .http
        .get(&format!("/queue/check-queue?token={token}"))
        .await
}

/// The fields of a JSON object, sorted.
fn fields(json: &serde_json::Value) -> Vec<&str> {
    let mut keys: Vec<&str> = json
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

#[tokio::test]
async fn joining_before_the_prequeue_opens_is_409_room_not_open_saying_when_and_queues_nothing() {
    let system = system_with_operator().await;
    schedule_default_room(
        &system,
        serde_json::json!({"prequeueOpensAt": at(60_000), "opensAt": at(120_000)}),
    )
    .await;
    let refused = join(&system, 1).await;
    assert_error(&refused, 409, "ROOM_NOT_OPEN");
    let message = refused.json["message"].as_str().unwrap();
    assert!(message.contains(&at(60_000)), "says when: {message}");
    // Nothing was queued: another joiner once it opens is alone in the pre-queue.
    system.advance(60_000);
    let joined = join(&system, 2).await;
    assert_eq!(joined.json["status"], "PREQUEUE", "{}", joined.json);
    assert_eq!(
        system
            .queue_store
            .admit(queue::domain::Room::Default)
            .await
            .unwrap()
            .waiting,
        1
    );
}

#[tokio::test]
async fn a_scheduled_rooms_joiners_get_prequeue_with_opens_at_then_after_the_opening_a_drawn_place_ahead_of_later_joiners()
 {
    let system = system_with_operator().await;
    schedule_default_room(
        &system,
        serde_json::json!({"prequeueOpensAt": at(-60_000), "opensAt": at(60_000)}),
    )
    .await;
    let mut tokens = Vec::new();
    for user in 1..=3 {
        let reply = join(&system, user).await;
        assert_eq!(reply.status, 200, "{}", reply.json);
        let entry = &reply.json;
        assert_eq!(
            (&entry["status"], &entry["position"], &entry["etaSeconds"]),
            (
                &serde_json::json!("PREQUEUE"),
                &serde_json::json!(0),
                &serde_json::json!(0)
            ),
            "{entry}"
        );
        assert_eq!(entry["opensAt"], at(60_000), "{entry}");
        assert!(entry["pollAfterSeconds"].as_u64().unwrap() >= 1, "{entry}");
        assert_eq!(
            fields(entry),
            [
                "etaSeconds",
                "opensAt",
                "pollAfterSeconds",
                "position",
                "status",
                "token"
            ],
            "{entry}"
        );
        tokens.push(entry["token"].clone());
    }
    let polled = check(&system, &tokens[0]).await;
    assert_eq!(polled.json["status"], "PREQUEUE", "{}", polled.json);
    assert_eq!(polled.json["opensAt"], at(60_000));

    // Polling keeps the places (the heartbeat) until the opening.
    system.advance(30_000);
    for token in &tokens {
        assert_eq!(check(&system, token).await.json["status"], "PREQUEUE");
    }
    // The opening: each is told a place, drawn among the three; a later joiner comes after.
    system.advance(30_000);
    let mut places = Vec::new();
    for token in &tokens {
        let waiting = check(&system, token).await;
        assert_eq!(waiting.json["status"], "WAITING", "{}", waiting.json);
        // The original clients' shape, nothing new.
        assert_eq!(
            fields(&waiting.json),
            [
                "etaSeconds",
                "pollAfterSeconds",
                "position",
                "status",
                "token"
            ],
            "{}",
            waiting.json
        );
        places.push(waiting.json["position"].as_u64().unwrap());
    }
    places.sort_unstable();
    assert_eq!(places, [1, 2, 3]);
    let late = join(&system, 4).await;
    assert_eq!(
        (&late.json["status"], &late.json["position"]),
        (&serde_json::json!("WAITING"), &serde_json::json!(4)),
        "{}",
        late.json
    );
}

#[tokio::test]
async fn a_waiter_is_told_sold_out_on_the_next_poll_keeps_the_place_and_hears_whether_seats_may_return()
 {
    let system = System::start_queue_only(default_policy()).await;
    let first = join(&system, 1).await.json["token"].clone();
    let second = join(&system, 2).await.json["token"].clone();
    let room = queue::domain::Room::Default;
    let ceiling = queue::outflow::Pace::ceiling();
    let seats = |free, held, sold| Some(queue::domain::RoomSeats { free, held, sold });
    system
        .queue_store
        .admit_with(room, &ceiling, seats(0, 1, 49))
        .await
        .unwrap();

    let told = check(&system, &second).await;
    assert_eq!(told.status, 200, "{}", told.json);
    assert_eq!(
        (
            &told.json["status"],
            &told.json["position"],
            &told.json["etaSeconds"],
            &told.json["seatsMayReturn"]
        ),
        (
            &serde_json::json!("SOLD_OUT"),
            &serde_json::json!(2),
            &serde_json::json!(0),
            &serde_json::json!(true)
        ),
        "{}",
        told.json
    );
    assert_eq!(
        fields(&told.json),
        [
            "etaSeconds",
            "pollAfterSeconds",
            "position",
            "seatsMayReturn",
            "status",
            "token"
        ],
        "{}",
        told.json
    );
    // Nobody is admitted while no seat is free.
    system.advance(1_000);
    let step = system
        .queue_store
        .admit_with(room, &ceiling, None)
        .await
        .unwrap();
    assert_eq!((step.admitted, step.waiting), (0, 2));

    // The held seat is paid for: nothing can come back.
    system
        .queue_store
        .admit_with(room, &ceiling, seats(0, 0, 50))
        .await
        .unwrap();
    let final_word = check(&system, &first).await;
    assert_eq!(
        (
            &final_word.json["status"],
            &final_word.json["position"],
            &final_word.json["seatsMayReturn"]
        ),
        (
            &serde_json::json!("SOLD_OUT"),
            &serde_json::json!(1),
            &serde_json::json!(false)
        ),
        "{}",
        final_word.json
    );

    // A seat comes back: the line moves again, in its order.
    system.advance(1_000);
    let step = system
        .queue_store
        .admit_with(room, &ceiling, seats(1, 0, 49))
        .await
        .unwrap();
    assert_eq!(step.admitted, 1);
    let admitted = check(&system, &first).await;
    assert_eq!(admitted.json["status"], "ACTIVE", "{}", admitted.json);
    assert_eq!(
        fields(&admitted.json),
        ["activeUntil", "etaSeconds", "position", "status", "token"],
        "{}",
        admitted.json
    );
    let next = check(&system, &second).await;
    assert_eq!(
        (&next.json["status"], &next.json["position"]),
        (&serde_json::json!("WAITING"), &serde_json::json!(1)),
        "one seat, one admission, and the next in line moves up: {}",
        next.json
    );
}

#[tokio::test]
async fn an_admitted_fan_is_told_until_when_to_choose_and_after_the_first_hold_no_longer() {
    let policy = queue::Policy {
        admitted_idle: Duration::from_secs(120),
        ..default_policy()
    };
    let system = System::start(policy).await;
    let (user, token) = system.active_tokens([7]).await.remove(0);
    let active = system
        .http
        .get(&format!("/queue/check-queue?token={token}"))
        .await;
    assert_eq!(active.json["status"], "ACTIVE", "{}", active.json);
    let choose_by = active.json["chooseBy"].as_str().expect("chooseBy");
    let active_until = active.json["activeUntil"].as_str().expect("activeUntil");
    assert!(choose_by < active_until, "{choose_by} {active_until}");
    let reserved = system
        .http
        .post(
            "/api/reserve",
            &format!(
                r#"{{"token": "{token}", "concertOptionId": 1, "seatId": 1, "userId": {user}}}"#
            ),
        )
        .await;
    assert_eq!(reserved.status, 303, "{}", reserved.json);
    let after = system
        .http
        .get(&format!("/queue/check-queue?token={token}"))
        .await;
    assert_eq!(after.json["status"], "ACTIVE");
    assert!(after.json.get("chooseBy").is_none(), "{}", after.json);
}
