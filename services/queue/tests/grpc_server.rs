//! The queue's gRPC server as a client sees it: health, reflection, and the edge's validation.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

use clap::Parser;
use kit::grpc::TracedChannel as Channel;
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
    let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut args = vec![
        "queue".to_owned(),
        "--listen-addr=127.0.0.1:0".to_owned(),
        format!("--redis-url={redis_url}"),
        format!("--key-prefix=test:{}", uuid::Uuid::new_v4().simple()),
    ];
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

#[tokio::test]
async fn health_says_serving_once_redis_answers() {
    let channel = start().await;
    for service in ["", "ticketing.queue.v1.QueueService"] {
        let response = HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health check");
        assert_eq!(
            response.into_inner().status(),
            ServingStatus::Serving,
            "service {service:?}"
        );
    }
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
async fn the_edge_rejects_bad_input_with_stable_codes() {
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

#[tokio::test]
async fn the_background_admitter_admits_in_arrival_order_at_the_configured_rate() {
    // 20/s with a 10 ms tick: 5 waiters are in within about a quarter second.
    let mut client = QueueServiceClient::new(
        start_with(&["--admission-rate=20", "--admission-tick-ms=10"]).await,
    );
    let mut tokens = Vec::new();
    for user in 1..=5 {
        let status = client
            .issue_token(pb::IssueTokenRequest {
                user_id: user,
                concert_id: Some(9),
            })
            .await
            .expect("issue")
            .into_inner();
        tokens.push(status.token);
    }
    // Wait for the condition (everyone ACTIVE), bounded; polling is also the heartbeat.
    // Each sweep polls the latest arrival first: admissions only ever add ACTIVE tokens, so if
    // token i is seen ACTIVE, every earlier arrival (polled after it) must be ACTIVE too.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut active = vec![false; tokens.len()];
        for index in (0..tokens.len()).rev() {
            let status = client
                .get_status(pb::GetStatusRequest {
                    token: tokens[index].clone(),
                })
                .await
                .expect("status")
                .into_inner();
            active[index] = status.status() == pb::TokenStatus::Active;
        }
        if let Some(latest) = active.iter().rposition(|a| *a) {
            assert!(
                active[..=latest].iter().all(|a| *a),
                "someone overtook an earlier arrival: {active:?}"
            );
        }
        if active.iter().all(|a| *a) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not all admitted in time: {active:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let verdict = client
        .validate_token(pb::ValidateTokenRequest {
            token: tokens[0].clone(),
            user_id: 1,
        })
        .await
        .expect("validate")
        .into_inner();
    assert_eq!(verdict.verdict(), pb::TokenVerdict::Valid);
    assert_eq!(verdict.concert_id, Some(9));
}
