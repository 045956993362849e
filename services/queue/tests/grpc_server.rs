//! The queue's gRPC server as a client sees it: health, reflection, the edge's validation and
//! conversions, and the background admitter.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod support;

use std::time::Duration;

use clap::Parser;
use kit::grpc::TracedChannel as Channel;
use queue::{Policy, QueueStore, domain::Room};
use support::{Rooms, START_MS, policy};
use ticketing_proto::queue::v1::{self as pb, queue_service_client::QueueServiceClient};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

async fn start() -> Channel {
    start_with(&[]).await
}

async fn start_with(extra: &[&str]) -> Channel {
    let mut args = vec![
        "queue".to_owned(),
        "--listen-addr=127.0.0.1:0".to_owned(),
        "--metrics-addr=127.0.0.1:0".to_owned(),
        format!("--key-prefix=test:{}", uuid::Uuid::new_v4().simple()),
        // No reservation service here: the configured rate always.
        "--reservation-url=".to_owned(),
    ];
    if !extra.iter().any(|arg| arg.starts_with("--redis-url=")) {
        args.extend(support::server_redis_args());
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let config = queue::Config::parse_from(args);
    let (addr, serve) = queue::build(config, std::future::pending())
        .await
        .expect("queue starts");
    tokio::spawn(serve);
    kit::grpc::channel(
        &format!("http://{addr}"),
        kit::grpc::ChannelTimeouts::default(),
    )
    .expect("channel")
}

/// A queue server whose Redis is a port nobody listens on.
async fn start_without_redis() -> Channel {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    start_with(&[
        &format!("--redis-url=redis://127.0.0.1:{port}"),
        "--redis-timeout-ms=300",
        "--admitter=false",
    ])
    .await
}

/// Both the server as a whole and the queue service report `expected`.
async fn assert_health(channel: &Channel, expected: ServingStatus) {
    for service in ["", "ticketing.queue.v1.QueueService"] {
        let response = HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health check");
        assert_eq!(
            response.into_inner().status(),
            expected,
            "service {service:?}"
        );
    }
}

#[tokio::test]
async fn health_says_serving_once_redis_answers() {
    let channel = start().await;
    assert_health(&channel, ServingStatus::Serving).await;
}

#[tokio::test]
async fn health_says_not_serving_while_redis_does_not_answer() {
    let channel = start_without_redis().await;
    assert_health(&channel, ServingStatus::NotServing).await;
}

/// The liveness probe's name answers for the process alone: a Redis outage must take the pod
/// out of rotation (readiness, above), not get it restarted.
#[tokio::test]
async fn liveness_says_serving_while_redis_does_not_answer() {
    let channel = start_without_redis().await;
    let check = |service: &str| {
        let mut client = HealthClient::new(channel.clone());
        let request = HealthCheckRequest {
            service: service.into(),
        };
        async move {
            client
                .check(request)
                .await
                .expect("health check")
                .into_inner()
                .status()
        }
    };
    assert_eq!(check(kit::grpc::LIVENESS).await, ServingStatus::Serving);
    assert_eq!(check("").await, ServingStatus::NotServing);
}

#[tokio::test]
async fn reflection_lists_the_queue_service() {
    let channel = start().await;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream_once(request))
        .await
        .expect("reflection")
        .into_inner();
    let response = responses
        .message()
        .await
        .expect("message")
        .expect("one response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection response {response:?}");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"ticketing.queue.v1.QueueService".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );
}

fn tokio_stream_once<T: Send + 'static>(
    item: T,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::iter([item])
}

#[tokio::test]
async fn the_edge_rejects_bad_input_with_stable_codes_and_answers_unknown_tokens_as_unknown() {
    let mut client = QueueServiceClient::new(start().await);
    let cases = [
        (
            pb::IssueTokenRequest {
                user_id: 0,
                concert_id: None,
            },
            "INVALID_USER_ID",
        ),
        (
            pb::IssueTokenRequest {
                user_id: -4,
                concert_id: None,
            },
            "INVALID_USER_ID",
        ),
        (
            pb::IssueTokenRequest {
                user_id: 1,
                concert_id: Some(0),
            },
            "INVALID_CONCERT_ID",
        ),
    ];
    for (request, code) in cases {
        let status = client.issue_token(request).await.expect_err("invalid");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(kit::error_code::of(&status), Some(code));
    }
    let status = client
        .get_status(pb::GetStatusRequest {
            token: "nope".into(),
        })
        .await
        .expect_err("invalid");
    assert_eq!(kit::error_code::of(&status), Some("INVALID_TOKEN"));
    let status = client
        .get_status(pb::GetStatusRequest {
            token: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(
        (status.code(), kit::error_code::of(&status)),
        (tonic::Code::NotFound, Some("TOKEN_NOT_FOUND"))
    );
    let verdict = client
        .validate_token(pb::ValidateTokenRequest {
            token: uuid::Uuid::new_v4().to_string(),
            user_id: 1,
        })
        .await
        .expect("a verdict, not an error")
        .into_inner();
    assert_eq!(verdict.verdict(), pb::TokenVerdict::NotFound);
    let released = client
        .release_token(pb::ReleaseTokenRequest {
            token: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .expect("release")
        .into_inner();
    assert!(!released.released);
}

/// A queue server on a store with its own key prefix, `policy` and a manual clock, with extra
/// flags; returns the channel, the store (to step or inspect) and the clock's handle.
async fn start_on_manual_clock(policy: Policy, extra: &[&str]) -> (Channel, Rooms) {
    let rooms = Rooms::new(policy);
    let mut args = vec![
        "queue".to_owned(),
        "--listen-addr=127.0.0.1:0".to_owned(),
        "--metrics-addr=127.0.0.1:0".to_owned(),
        format!("--key-prefix={}", rooms.prefix),
        "--reservation-url=".to_owned(),
    ];
    args.extend(support::server_redis_args());
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let config = queue::Config::parse_from(args);
    let (addr, serve) =
        queue::build_with_store(config, rooms.store.clone(), std::future::pending())
            .await
            .expect("queue starts");
    tokio::spawn(serve);
    let channel = kit::grpc::channel(
        &format!("http://{addr}"),
        kit::grpc::ChannelTimeouts::default(),
    )
    .expect("channel");
    (channel, rooms)
}

/// A server without its own admitter (the test steps the store) for up to 10 active, on a
/// manual clock, where user 5 has just been issued a token for `concert_id`; returns the
/// client, the store and the issued entry.
async fn user_5_waiting_in(
    concert_id: i64,
) -> (QueueServiceClient<Channel>, QueueStore, pb::QueueEntry) {
    let (channel, rooms) = start_on_manual_clock(policy(0.0, 10), &["--admitter=false"]).await;
    let mut client = QueueServiceClient::new(channel);
    let issued = client
        .issue_token(pb::IssueTokenRequest {
            user_id: 5,
            concert_id: Some(concert_id),
        })
        .await
        .expect("issue")
        .into_inner();
    (client, rooms.store, issued)
}

async fn entry(client: &mut QueueServiceClient<Channel>, token: &str) -> pb::QueueEntry {
    client
        .get_status(pb::GetStatusRequest {
            token: token.to_owned(),
        })
        .await
        .expect("status")
        .into_inner()
}

#[tokio::test]
async fn the_background_admitter_admits_in_arrival_order_at_the_configured_rate() {
    // 20/s on the manual clock, the admitter ticking every 10 ms of real time. The clock only
    // moves when the test moves it, so each half second the test adds is worth exactly 10
    // admissions (the bucket holds whole tokens and at most a second's worth).
    const RATE: u64 = 20;
    const STEP_MS: i64 = 500;
    const STEPS: u64 = 6;
    let per_step = RATE * STEP_MS as u64 / 1_000;
    let (channel, rooms) =
        start_on_manual_clock(policy(RATE as f64, 0), &["--admission-tick-ms=10"]).await;
    let store = &rooms.store;
    let mut client = QueueServiceClient::new(channel);
    let room = Room::Concert(9);
    let mut tokens = Vec::new();
    for user in 1..=100 {
        let issued = client
            .issue_token(pb::IssueTokenRequest {
                user_id: user,
                concert_id: room.concert_id(),
            })
            .await
            .expect("issue")
            .into_inner();
        assert_eq!(issued.position, user as u64, "arrival order");
        tokens.push(issued.token);
    }
    // The bucket starts empty and the clock stands still: nobody can be admitted yet. (This
    // also starts the bucket at the current instant, whether or not the admitter got there
    // first, so the first half second the test adds counts in full.)
    assert_eq!(store.admit(room).await.expect("admit").admitted, 0);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for step in 1..=STEPS {
        rooms.advance(STEP_MS);
        let admitted = (per_step * step) as usize;
        // The condition: the last of this step's admissions is ACTIVE (bounded, no sleeping).
        while entry(&mut client, &tokens[admitted - 1]).await.status() != pb::TokenStatus::Active {
            assert!(
                tokio::time::Instant::now() < deadline,
                "step {step}: token {admitted} never admitted"
            );
        }
        // The bucket is spent at this instant, so nothing more can be admitted until the
        // clock moves again...
        assert_eq!(
            store.admit(room).await.expect("admit").admitted,
            0,
            "step {step}: more than {per_step} admissions in {STEP_MS} ms"
        );
        // ...and those admitted are exactly the first arrivals, the others moved up in order.
        for (index, token) in tokens.iter().enumerate() {
            let entry = entry(&mut client, token).await;
            if index < admitted {
                assert_eq!(
                    entry.status(),
                    pb::TokenStatus::Active,
                    "step {step}: {index}"
                );
            } else {
                assert_eq!(
                    entry.status(),
                    pb::TokenStatus::Waiting,
                    "step {step}: {index}"
                );
                assert_eq!(entry.position, (index - admitted + 1) as u64, "step {step}");
            }
        }
    }
    // 3 s at 20/s.
    let total = tokens
        .len()
        .saturating_sub(store.admit(room).await.expect("admit").waiting as usize);
    assert_eq!(total as u64, RATE * STEPS * STEP_MS as u64 / 1_000);
}

#[tokio::test]
async fn an_admitted_token_is_valid_over_grpc_for_its_user_only_with_its_concert_and_expiry() {
    let (mut client, store, issued) = user_5_waiting_in(9).await;
    assert_eq!(
        (issued.status(), issued.position, issued.concert_id),
        (pb::TokenStatus::Waiting, 1, Some(9))
    );
    assert!(issued.poll_after_ms >= 1_000, "{issued:?}");
    let validate = |user_id| pb::ValidateTokenRequest {
        token: issued.token.clone(),
        user_id,
    };
    let waiting = client.validate_token(validate(5)).await.expect("validate");
    assert_eq!(
        waiting.into_inner().verdict(),
        pb::TokenVerdict::NotAdmitted
    );

    assert_eq!(
        store.admit(Room::Concert(9)).await.expect("admit").admitted,
        1
    );
    let until = START_MS + 600_000;
    let active = entry(&mut client, &issued.token).await;
    assert_eq!(
        (active.status(), active.position, active.poll_after_ms),
        (pb::TokenStatus::Active, 0, 0)
    );
    assert_eq!(active.active_until_unix_ms, Some(until));
    let verdict = client
        .validate_token(validate(5))
        .await
        .expect("validate")
        .into_inner();
    assert_eq!(verdict.verdict(), pb::TokenVerdict::Valid);
    assert_eq!(
        (verdict.concert_id, verdict.active_until_unix_ms),
        (Some(9), Some(until))
    );
    let stolen = client
        .validate_token(validate(6))
        .await
        .expect("validate")
        .into_inner();
    assert_eq!(stolen.verdict(), pb::TokenVerdict::WrongUser);
    assert_eq!(
        (stolen.concert_id, stolen.active_until_unix_ms),
        (None, None)
    );
}

fn settings_request(
    concert_id: Option<i64>,
    paused: Option<bool>,
    admission_rate: Option<f64>,
    active_cap: Option<u32>,
) -> pb::UpdateRoomSettingsRequest {
    pb::UpdateRoomSettingsRequest {
        concert_id,
        paused,
        admission_rate,
        active_cap,
        actor: "user:42".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn bad_room_settings_are_refused_with_invalid_argument_and_a_stable_code_and_change_nothing()
{
    // Configured 5/s without a cap: a rate of 0 would leave neither.
    let mut client = QueueServiceClient::new(
        start_with(&["--admission-rate=5", "--active-cap=0", "--admitter=false"]).await,
    );
    let settings_code = "INVALID_ROOM_SETTINGS";
    let cases = [
        (
            settings_request(Some(7), None, Some(-1.0), None),
            settings_code,
        ),
        (
            settings_request(Some(7), None, Some(f64::NAN), None),
            settings_code,
        ),
        (
            settings_request(Some(7), None, Some(f64::INFINITY), None),
            settings_code,
        ),
        (
            settings_request(Some(7), None, Some(100_001.0), None),
            settings_code,
        ),
        (
            settings_request(Some(7), Some(true), Some(0.0), None),
            settings_code,
        ),
        (
            settings_request(None, None, Some(0.0), Some(0)),
            settings_code,
        ),
        (settings_request(Some(7), None, None, None), settings_code),
        (
            settings_request(Some(0), Some(true), None, None),
            "INVALID_CONCERT_ID",
        ),
        (
            pb::UpdateRoomSettingsRequest {
                actor: String::new(),
                ..settings_request(Some(7), Some(true), None, None)
            },
            "INVALID_ACTOR",
        ),
    ];
    for (request, code) in cases {
        let status = client
            .update_room_settings(request.clone())
            .await
            .expect_err("invalid");
        assert_eq!(
            (status.code(), kit::error_code::of(&status)),
            (tonic::Code::InvalidArgument, Some(code)),
            "{request:?}: {status:?}"
        );
    }
    let status = client
        .list_rooms(pb::ListRoomsRequest {
            concert_ids: vec![3, -1],
        })
        .await
        .expect_err("invalid");
    assert_eq!(kit::error_code::of(&status), Some("INVALID_CONCERT_ID"));
    let status = client
        .get_room_history(pb::GetRoomHistoryRequest {
            concert_id: Some(0),
        })
        .await
        .expect_err("invalid");
    assert_eq!(kit::error_code::of(&status), Some("INVALID_CONCERT_ID"));

    // Nothing was written or logged.
    let changes = client
        .list_setting_changes(pb::ListSettingChangesRequest { limit: 0 })
        .await
        .expect("changes")
        .into_inner();
    assert!(changes.changes.is_empty(), "{changes:?}");
    let rooms = client
        .list_rooms(pb::ListRoomsRequest::default())
        .await
        .expect("rooms")
        .into_inner()
        .rooms;
    assert_eq!(rooms.len(), 1, "only the default room: {rooms:?}");
    assert!(!rooms[0].settings_overridden);
    assert_eq!(
        rooms[0].settings,
        Some(pb::RoomSettings {
            paused: false,
            admission_rate: 5.0,
            active_cap: 0,
            ..Default::default()
        })
    );
}

#[tokio::test]
async fn an_operator_pauses_a_room_over_grpc_and_the_rooms_the_log_the_waiters_and_the_history_show_it()
 {
    let (mut client, store, issued) = user_5_waiting_in(7).await;
    assert!(!issued.paused);

    let figures = client
        .update_room_settings(settings_request(Some(7), Some(true), None, None))
        .await
        .expect("pause")
        .into_inner();
    assert_eq!(figures.concert_id, Some(7));
    assert!(figures.settings_overridden);
    assert_eq!(
        figures.settings,
        Some(pb::RoomSettings {
            paused: true,
            admission_rate: 0.0,
            active_cap: 10,
            ..Default::default()
        })
    );
    assert_eq!((figures.waiting, figures.active), (1, 0));

    let room = Room::Concert(7);
    assert_eq!(
        store.admit(room).await.expect("admit").admitted,
        0,
        "paused"
    );
    let waiting = entry(&mut client, &issued.token).await;
    assert_eq!(waiting.status(), pb::TokenStatus::Waiting);
    assert!(waiting.paused, "{waiting:?}");

    let rooms = client
        .list_rooms(pb::ListRoomsRequest {
            concert_ids: vec![8],
        })
        .await
        .expect("rooms")
        .into_inner()
        .rooms;
    let ids: Vec<_> = rooms.iter().map(|r| r.concert_id).collect();
    assert_eq!(ids, [None, Some(7), Some(8)]);
    assert!(rooms[1].settings.is_some_and(|s| s.paused));
    assert!(!rooms[2].settings_overridden);

    let changes = client
        .list_setting_changes(pb::ListSettingChangesRequest { limit: 0 })
        .await
        .expect("changes")
        .into_inner()
        .changes;
    assert_eq!(
        changes,
        [pb::SettingChange {
            at_unix_ms: START_MS,
            actor: "user:42".into(),
            concert_id: Some(7),
            paused: Some(true),
            admission_rate: None,
            active_cap: None,
            ..Default::default()
        }]
    );

    let history = client
        .get_room_history(pb::GetRoomHistoryRequest {
            concert_id: Some(7),
        })
        .await
        .expect("history")
        .into_inner();
    assert_eq!(history.concert_id, Some(7));
    assert_eq!(
        history.samples,
        [pb::RoomSample {
            at_unix_ms: START_MS,
            waiting: 1,
            active: 0,
            admitted_total: 0,
            dropped_total: 0,
        }]
    );

    client
        .update_room_settings(settings_request(Some(7), Some(false), None, None))
        .await
        .expect("resume");
    assert_eq!(
        store.admit(room).await.expect("admit").admitted,
        1,
        "resumed"
    );
    assert_eq!(
        entry(&mut client, &issued.token).await.status(),
        pb::TokenStatus::Active
    );
}
