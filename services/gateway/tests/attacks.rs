//! The waiting room tried as an abuser would, over HTTP against real servers: each test is
//! one attack from docs/security.md, and each is refused. Where an attack applies to both
//! identity modes the test runs it in both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{sync::Arc, time::Duration};

use kit::dev_identity::{AUDIENCE, DevKey, ISSUER};
use queue::domain::Room;
use serde_json::json;
use support::{
    Reply, System, assert_error, default_policy,
    jwt::{JwtSystem, jwt_system},
};

/// `user`'s ACTIVE token in the shared room.
async fn active_token(jwt: &JwtSystem, user: i64) -> String {
    let reply = jwt.post(user, "/queue/issue-token", "{}").await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    admit_all(&jwt.system, Room::Default).await;
    reply.json["token"].as_str().unwrap().to_owned()
}

/// Steps the manual clock and admission until nobody waits in `room`.
async fn admit_all(system: &System, room: Room) {
    loop {
        system.advance(1_000);
        if system.queue_store.admit(room).await.unwrap().waiting == 0 {
            break;
        }
    }
}

/// Concert 2 with its own waiting room (options 11..=20, 50 seats each), beside the demo
/// concert 1 that the shared room admits to.
async fn add_concert_with_own_room(system: &System) {
    catalog::seed::seed(
        system.catalog_db(),
        catalog::seed::SeedArgs {
            concerts: 2,
            options_per_concert: 10,
            seats_per_option: 50,
        },
    )
    .await
    .unwrap();
    catalog::testing::give_own_room(system.catalog_db(), 2)
        .await
        .unwrap();
}

/// Every Redis key under the system's queue prefix.
async fn queue_keys(system: &System) -> Vec<String> {
    let pool = deadpool_redis::Config::from_url(support::redis_url())
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .unwrap();
    let mut connection = pool.get().await.unwrap();
    let mut keys: Vec<String> = deadpool_redis::redis::cmd("KEYS")
        .arg(format!("{}:*", system.prefix))
        .query_async(&mut connection)
        .await
        .unwrap();
    keys.sort();
    keys
}

fn reserve(token: &str, option: i64, seat: i64, user: Option<i64>) -> String {
    let mut body = json!({"token": token, "concertOptionId": option, "seatId": seat});
    if let Some(user) = user {
        body["userId"] = json!(user);
    }
    body.to_string()
}

// ---- 1. Skipping the line ----------------------------------------------------------------

#[tokio::test]
async fn skipping_the_line_with_a_made_up_concert_is_404_and_leaves_nothing_in_redis() {
    let system = System::start(default_policy()).await;
    let before = queue_keys(&system).await;
    let reply = system
        .http
        .post(
            "/queue/issue-token",
            r#"{"userId": 777001, "concertId": 987654}"#,
        )
        .await;
    assert_error(&reply, 404, "CONCERT_NOT_FOUND");
    assert_eq!(queue_keys(&system).await, before, "a room was created");
}

#[tokio::test]
async fn skipping_the_line_with_another_rooms_token_is_refused_on_reserve_and_pay_trusted() {
    let system = System::start(default_policy()).await;
    add_concert_with_own_room(&system).await;
    // An empty room of concert 2 admits at once…
    let reply = system
        .http
        .post("/queue/issue-token", r#"{"userId": 31, "concertId": 2}"#)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["concertId"], 2);
    let other_room = reply.json["token"].as_str().unwrap().to_owned();
    admit_all(&system, Room::Concert(2)).await;
    // …but its token does not open concert 1 (the shared room's), option 3 seat 7.
    let reply = system
        .http
        .post("/api/reserve", &reserve(&other_room, 3, 7, Some(31)))
        .await;
    assert_error(&reply, 403, "TOKEN_WRONG_ROOM");
    // It does open its own concert.
    let reply = system
        .http
        .post("/api/reserve", &reserve(&other_room, 11, 7, Some(31)))
        .await;
    assert_eq!(reply.status, 303, "{}", reply.json);
    // A hold made through the shared room cannot be paid with the other room's token.
    let shared = system.active_tokens([31]).await.remove(0).1;
    let held = system
        .http
        .post("/api/reserve", &reserve(&shared, 3, 7, Some(31)))
        .await;
    assert_eq!(held.status, 303, "{}", held.json);
    system
        .http
        .post("/api/users/31/balance/charge", r#"{"amount": 1000000}"#)
        .await;
    let pay =
        json!({"reservationId": held.json["reservationId"], "userId": 31, "token": other_room});
    let reply = system.http.post("/api/payments", &pay.to_string()).await;
    assert_error(&reply, 403, "TOKEN_WRONG_ROOM");
}

#[tokio::test]
async fn skipping_the_line_with_a_concert_of_the_shared_room_queues_in_the_shared_room() {
    let system = System::start(default_policy()).await;
    // Concert 1 belongs to the shared room: asking for it by id is the same line.
    let by_id = system
        .http
        .post("/queue/issue-token", r#"{"userId": 41, "concertId": 1}"#)
        .await;
    assert_eq!(by_id.status, 200, "{}", by_id.json);
    let plain = system
        .http
        .post("/queue/issue-token", r#"{"userId": 41}"#)
        .await;
    assert_eq!(by_id.json["token"], plain.json["token"]);
}

#[tokio::test]
async fn skipping_the_line_with_another_rooms_token_is_refused_jwt() {
    let jwt = jwt_system(&[]).await;
    add_concert_with_own_room(&jwt.system).await;
    let reply = jwt
        .post(32, "/queue/issue-token", r#"{"concertId": 2}"#)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    let other_room = reply.json["token"].as_str().unwrap().to_owned();
    admit_all(&jwt.system, Room::Concert(2)).await;
    let reply = jwt
        .post(32, "/api/reserve", &reserve(&other_room, 3, 7, None))
        .await;
    assert_error(&reply, 403, "TOKEN_WRONG_ROOM");
    let reply = jwt
        .post(32, "/queue/issue-token", r#"{"concertId": 987654}"#)
        .await;
    assert_error(&reply, 404, "CONCERT_NOT_FOUND");
}

// ---- 2. Taking someone's place -----------------------------------------------------------

#[tokio::test]
async fn taking_someones_place_by_asking_for_their_token_is_refused() {
    let jwt = jwt_system(&[]).await;
    let victim = jwt.post(51, "/queue/issue-token", "{}").await;
    assert_eq!(victim.status, 200, "{}", victim.json);
    let token = victim.json["token"].as_str().unwrap();
    // The thief names the victim: refused, and the victim's token is not in the answer.
    let reply = jwt
        .post(52, "/queue/issue-token", r#"{"userId": 51}"#)
        .await;
    assert_error(&reply, 403, "USER_MISMATCH");
    assert!(!reply.json.to_string().contains(token));
    // The thief's own request gets the thief's own token.
    let own = jwt.post(52, "/queue/issue-token", "{}").await;
    assert_ne!(own.json["token"].as_str(), Some(token));
    // A leaked token is nobody else's to poll.
    let reply = jwt
        .get(52, &format!("/queue/check-queue?token={token}"))
        .await;
    assert_error(&reply, 401, "TOKEN_NOT_FOUND");
    // Without a credential nothing user-specific answers.
    let reply = jwt
        .system
        .http
        .post("/queue/issue-token", r#"{"userId": 51}"#)
        .await;
    assert_error(&reply, 401, "AUTH_REQUIRED");
}

#[tokio::test]
async fn taking_someones_place_with_a_forged_expired_or_foreign_token_is_401() {
    let jwt = jwt_system(&[]).await;
    let issue = |bearer: String| {
        let http = jwt.system.http.clone();
        async move {
            http.post_with("/queue/issue-token", "{}", &[("authorization", &bearer)])
                .await
        }
    };
    // Signed by a key the issuer never published.
    let stranger = DevKey::generate().unwrap();
    let forged = stranger.mint(51, true, Duration::from_secs(600)).unwrap();
    assert_error(
        &issue(format!("Bearer {forged}")).await,
        401,
        "AUTH_INVALID",
    );
    // Expired an hour ago (beyond the leeway).
    let old = kit::dev_identity::now_secs() - 7200;
    let expired = jwt
        .key
        .mint_at(51, false, old, Duration::from_secs(3600))
        .unwrap();
    assert_error(
        &issue(format!("Bearer {expired}")).await,
        401,
        "AUTH_INVALID",
    );
    // Right key, wrong audience or issuer.
    let now = kit::dev_identity::now_secs();
    for (iss, aud) in [(ISSUER, "another-app"), ("https://evil.example", AUDIENCE)] {
        let token = jwt
            .key
            .sign(&json!({"iss": iss, "aud": aud, "sub": "51", "exp": now + 600}))
            .unwrap();
        assert_error(&issue(format!("Bearer {token}")).await, 401, "AUTH_INVALID");
    }
    // A subject that is not a user id.
    let token = jwt
        .key
        .sign(&json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now + 600}))
        .unwrap();
    assert_error(&issue(format!("Bearer {token}")).await, 401, "AUTH_INVALID");
    // The signature of one token on another's claims.
    let good = jwt.key.mint(51, false, Duration::from_secs(600)).unwrap();
    let admin = jwt.key.mint(52, true, Duration::from_secs(600)).unwrap();
    let spliced: Vec<&str> = good.split('.').collect();
    let other: Vec<&str> = admin.split('.').collect();
    let tampered = format!("{}.{}.{}", spliced[0], other[1], spliced[2]);
    assert_error(
        &issue(format!("Bearer {tampered}")).await,
        401,
        "AUTH_INVALID",
    );
    // `alg: none` and garbage.
    let none = format!("eyJhbGciOiJub25lIn0.{}.", spliced[1]);
    assert_error(&issue(format!("Bearer {none}")).await, 401, "AUTH_INVALID");
    assert_error(
        &issue("Basic dXNlcjpwYXNz".into()).await,
        401,
        "AUTH_INVALID",
    );
    // And the genuine token works.
    assert_eq!(issue(format!("Bearer {good}")).await.status, 200);
}

// ---- 3. Anything for anyone ----------------------------------------------------------------

#[tokio::test]
async fn anything_for_anyone_wallets_reservations_and_payments_are_the_owners_alone() {
    let jwt = jwt_system(&[]).await;
    let token = active_token(&jwt, 61).await;
    let held = jwt
        .post(61, "/api/reserve", &reserve(&token, 1, 1, None))
        .await;
    assert_eq!(held.status, 303, "{}", held.json);
    let reservation = held.json["reservationId"].as_i64().unwrap();
    assert_eq!(held.json["userId"], 61);
    assert_eq!(
        jwt.post(61, "/api/users/61/balance/charge", r#"{"amount": 500000}"#)
            .await
            .status,
        200
    );

    // Someone else: cannot charge, read or pay for user 61.
    let reply = jwt
        .post(
            62,
            "/api/users/61/balance/charge",
            r#"{"amount": 100000000}"#,
        )
        .await;
    assert_error(&reply, 403, "USER_MISMATCH");
    assert_error(
        &jwt.get(62, "/api/users/61/balance").await,
        403,
        "USER_MISMATCH",
    );
    let reply = jwt
        .get(62, &format!("/api/reservations/{reservation}"))
        .await;
    assert_error(&reply, 404, "RESERVATION_NOT_FOUND");
    // Walking the sequential ids finds nothing of anyone else's.
    for id in 1..=3 {
        let reply = jwt.get(62, &format!("/api/reservations/{id}")).await;
        assert_error(&reply, 404, "RESERVATION_NOT_FOUND");
    }
    let thief_token = active_token(&jwt, 62).await;
    let pay = json!({"reservationId": reservation, "token": thief_token});
    let reply = jwt.post(62, "/api/payments", &pay.to_string()).await;
    assert_error(&reply, 404, "RESERVATION_NOT_FOUND");
    let pay = json!({"reservationId": reservation, "userId": 61, "token": thief_token});
    let reply = jwt.post(62, "/api/payments", &pay.to_string()).await;
    assert_error(&reply, 403, "USER_MISMATCH");

    // The owner: reads, pays; balance moved only by the owner's own actions.
    let reply = jwt
        .get(61, &format!("/api/reservations/{reservation}"))
        .await;
    assert_eq!(reply.json["status"], "HELD", "{}", reply.json);
    let pay = json!({"reservationId": reservation, "token": token});
    let reply = jwt.post(61, "/api/payments", &pay.to_string()).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    let balance = jwt.get(61, "/api/users/61/balance").await;
    assert_eq!(
        balance.json["balance"],
        500000 - reply.json["amount"].as_i64().unwrap()
    );
}

// ---- 4. Hoarding ------------------------------------------------------------------------------

async fn hoard(
    system: &System,
    token: &str,
    user: i64,
    headers: Vec<(String, String)>,
) -> Vec<Reply> {
    let headers = Arc::new(headers);
    let attempts = (1..=20).map(|seat| {
        let http = system.http.clone();
        let body = reserve(token, 5, seat, Some(user));
        let headers = headers.clone();
        tokio::spawn(async move {
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            http.post_with("/api/reserve", &body, &headers).await
        })
    });
    futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

fn assert_four_held(replies: &[Reply]) {
    let held = replies.iter().filter(|r| r.status == 303).count();
    assert_eq!(
        held,
        4,
        "{:?}",
        replies.iter().map(|r| &r.json).collect::<Vec<_>>()
    );
    for refused in replies.iter().filter(|r| r.status != 303) {
        assert_error(refused, 409, "SEAT_LIMIT_REACHED");
    }
}

#[tokio::test]
async fn hoarding_twenty_simultaneous_holds_by_one_user_get_exactly_four_seats_trusted() {
    let system = System::start(default_policy()).await;
    let token = system.active_tokens([71]).await.remove(0).1;
    assert_four_held(&hoard(&system, &token, 71, Vec::new()).await);
    // The moment the holds run out, the limit still stands.
    system.expire_holds().await;
    assert_four_held(&hoard(&system, &token, 71, Vec::new()).await);
}

#[tokio::test]
async fn hoarding_twenty_simultaneous_holds_by_one_user_get_exactly_four_seats_jwt() {
    // The rate limit is not what this test is about: a burst of 20 is allowed.
    let jwt = jwt_system(&["--rate-limit-burst=100"]).await;
    let token = active_token(&jwt, 72).await;
    let headers = vec![("authorization".to_owned(), jwt.bearer(72))];
    assert_four_held(&hoard(&jwt.system, &token, 72, headers).await);
}

// ---- 6. Flooding -------------------------------------------------------------------------------

#[tokio::test]
async fn flooding_one_caller_past_its_rate_is_429_with_retry_after_and_others_still_pass() {
    let jwt = jwt_system(&["--rate-limit-per-sec=1", "--rate-limit-burst=5"]).await;
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..8 {
        let reply = jwt.get(81, "/api/users/81/balance").await;
        statuses.push(reply.status);
        last = Some(reply);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    let last = last.unwrap();
    assert_error(&last, 429, "TOO_MANY_REQUESTS");
    // Another caller is not slowed down by the first.
    assert_eq!(jwt.get(82, "/api/users/82/balance").await.status, 200);
    // Retry-After is on the wire.
    let bearer = jwt.bearer(81);
    let raw = raw_get(&jwt.system, "/api/users/81/balance", &bearer).await;
    assert!(raw.starts_with("HTTP/1.1 429"), "{raw}");
    assert!(raw.to_ascii_lowercase().contains("retry-after: 1"), "{raw}");
}

#[tokio::test]
async fn flooding_from_one_address_is_429_where_limits_per_address_are_configured() {
    let system = System::start_with(
        default_policy(),
        &[
            "--rate-limit-by-address=true",
            "--rate-limit-per-sec=1",
            "--rate-limit-burst=3",
        ],
    )
    .await;
    // Trusted mode: the claimed users differ, the address is the same.
    let mut statuses = Vec::new();
    for user in 1..=6 {
        statuses.push(
            system
                .http
                .get(&format!("/api/users/{user}/balance"))
                .await
                .status,
        );
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429]);
}

/// The raw response head, to see headers the JSON helper drops.
async fn raw_get(system: &System, path: &str, bearer: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(system.http.addr())
        .await
        .unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {bearer}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    response
}

// ---- 7. Retries land safely ------------------------------------------------------------------

#[tokio::test]
async fn a_retried_hold_returns_the_users_own_live_hold_and_others_still_see_seat_taken() {
    let system = System::start(default_policy()).await;
    let tokens = system.active_tokens([91, 92]).await;
    let first = system
        .http
        .post("/api/reserve", &reserve(&tokens[0].1, 2, 9, Some(91)))
        .await;
    assert_eq!(first.status, 303, "{}", first.json);
    let retry = system
        .http
        .post("/api/reserve", &reserve(&tokens[0].1, 2, 9, Some(91)))
        .await;
    assert_eq!(retry.status, 303, "{}", retry.json);
    assert_eq!(retry.json["reservationId"], first.json["reservationId"]);
    let other = system
        .http
        .post("/api/reserve", &reserve(&tokens[1].1, 2, 9, Some(92)))
        .await;
    assert_error(&other, 400, "SEAT_TAKEN");
}

mod late_queue {
    use std::time::Duration;

    use ticketing_proto::queue::v1::{self as pb, queue_service_server::QueueService};
    use tonic::{Request, Response, Status};

    /// A queue that validates every token, slowly, and never finishes a release in time.
    pub struct LateQueue {
        pub validate_after: Duration,
    }

    #[tonic::async_trait]
    impl QueueService for LateQueue {
        async fn issue_token(
            &self,
            _: Request<pb::IssueTokenRequest>,
        ) -> Result<Response<pb::QueueEntry>, Status> {
            Err(Status::unimplemented("late queue"))
        }
        async fn get_status(
            &self,
            _: Request<pb::GetStatusRequest>,
        ) -> Result<Response<pb::QueueEntry>, Status> {
            Err(Status::unimplemented("late queue"))
        }
        async fn validate_token(
            &self,
            _: Request<pb::ValidateTokenRequest>,
        ) -> Result<Response<pb::ValidateTokenResponse>, Status> {
            tokio::time::sleep(self.validate_after).await;
            Ok(Response::new(pb::ValidateTokenResponse {
                verdict: pb::TokenVerdict::Valid.into(),
                active_until_unix_ms: Some(i64::MAX),
                concert_id: None,
            }))
        }
        async fn release_token(
            &self,
            _: Request<pb::ReleaseTokenRequest>,
        ) -> Result<Response<pb::ReleaseTokenResponse>, Status> {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Err(Status::internal("too late"))
        }
        crate::support::no_operator_rpcs!();
    }
}

#[tokio::test]
async fn a_committed_payment_is_answered_even_when_its_calls_outlast_the_request_deadline() {
    // Validate takes half the request's time and the release never answers: one full call
    // timeout each would be 1.5 s + pay + 2 s, past the 3 s request deadline.
    let (queue_addr, incoming) = kit::grpc::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let queue = ticketing_proto::queue::v1::queue_service_server::QueueServiceServer::new(
        late_queue::LateQueue {
            validate_after: Duration::from_millis(1500),
        },
    );
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(queue)
            .serve_with_incoming(incoming),
    );
    let (catalog_url, reservation_url, _, _) = support::start_catalog_and_reservation().await;
    let http = support::Http::new(
        support::start_gateway(
            &format!("http://{queue_addr}"),
            &[
                &format!("--catalog-url={catalog_url}"),
                &format!("--reservation-url={reservation_url}"),
                "--grpc-timeout-ms=2000",
                "--request-timeout-ms=3000",
            ],
        )
        .await,
    );
    let token = uuid::Uuid::new_v4().to_string();
    let held = http
        .post("/api/reserve", &reserve(&token, 1, 1, Some(5)))
        .await;
    assert_eq!(held.status, 303, "{}", held.json);
    http.post("/api/users/5/balance/charge", r#"{"amount": 1000000}"#)
        .await;
    let pay = json!({"reservationId": held.json["reservationId"], "userId": 5, "token": token});
    let started = std::time::Instant::now();
    let reply = http.post("/api/payments", &pay.to_string()).await;
    assert_eq!(
        reply.status, 200,
        "a committed payment answered {}",
        reply.json
    );
    assert_eq!(reply.json["status"], "CONFIRMED");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
