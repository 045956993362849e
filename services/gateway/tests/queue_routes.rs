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
    // A tenth of ~300 s, capped at a third of the 60 s grace.
    assert_eq!(back, 20, "{}", replies[299].json);
    let token = replies[299].json["token"].as_str().unwrap();
    let status = system
        .http
        .get(&format!("/queue/check-queue?token={token}"))
        .await;
    assert_eq!(status.json["pollAfterSeconds"], 20, "{}", status.json);

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
