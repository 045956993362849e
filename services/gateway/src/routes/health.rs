//! `/healthz` (the process is alive) and `/readyz` (every backend answers its gRPC health check).

use std::collections::BTreeMap;

use axum::{Json, extract::State, http::StatusCode};
use serde::Serialize;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// Up or down.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Health {
    Up,
    Down,
}

#[derive(Serialize, ToSchema)]
pub struct Liveness {
    status: Health,
}

/// Whether every backend is serving, and each one's state.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    status: Health,
    /// `queue`, `catalog`, `reservation`.
    dependencies: BTreeMap<&'static str, Health>,
}

crate::errors!(local HealthErrors {});

/// The process is alive (it asks no backend).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    operation_id = "healthz",
    security(()),
    responses(
        (status = 200, description = "Alive", body = Liveness),
        HealthErrors,
    )
)]
async fn healthz() -> Json<Liveness> {
    Json(Liveness { status: Health::Up })
}

crate::errors!(local ReadyzErrors {});

/// Every backend's grpc.health.v1 says SERVING. 503 otherwise, with the failing dependency
/// (and 503 `OVERLOADED`, an error, past the in-flight limit).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    operation_id = "readyz",
    security(()),
    responses(
        (status = 200, description = "Every backend is serving", body = Readiness),
        // After the shared errors: this 503 replaces theirs (it carries OVERLOADED too).
        ReadyzErrors,
        (status = 503, description = "A backend is not serving (`status` DOWN), or `OVERLOADED`", body = ReadyzUnavailable),
    )
)]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let deadline = state.backends.deadline();
    let checks = state.backends.channels().map(|(name, channel)| async move {
        // A read: asked again of another replica when one is cut off on its way.
        let answer = kit::grpc::retrying(true, deadline, |left| {
            let request = kit::grpc::request(
                HealthCheckRequest {
                    service: String::new(),
                },
                left,
            );
            let mut client = HealthClient::new(channel.clone());
            async move { Ok(client.check(request).await?.into_inner()) }
        })
        .await;
        let serving = answer.is_ok_and(|answer| answer.status() == ServingStatus::Serving);
        (name, if serving { Health::Up } else { Health::Down })
    });
    let dependencies: BTreeMap<&'static str, Health> = futures::future::join_all(checks)
        .await
        .into_iter()
        .collect();
    let ready = dependencies.values().all(|health| *health == Health::Up);
    let (status, health) = if ready {
        (StatusCode::OK, Health::Up)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Health::Down)
    };
    (
        status,
        Json(Readiness {
            status: health,
            dependencies,
        }),
    )
}

/// What a 503 from `/readyz` carries: the readiness, or the in-flight limit's error.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // the document's union of two bodies that are written elsewhere
pub enum ReadyzUnavailable {
    NotReady(Readiness),
    Overloaded(crate::openapi::errors::ErrorBody),
}
