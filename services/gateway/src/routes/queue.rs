//! `POST /queue/issue-token` and `GET /queue/check-queue?token=`.

use axum::{
    Json, Router,
    extract::State,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use ticketing_proto::queue::v1 as pb;

use crate::{
    AppState,
    error::ApiError,
    extract::{JsonBody, QueryParams},
    routes::{rfc3339, valid_id},
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/queue/issue-token", post(issue_token))
        .route("/queue/check-queue", get(check_queue))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssueTokenBody {
    user_id: i64,
    #[serde(default)]
    concert_id: Option<i64>,
}

#[derive(Deserialize)]
pub struct CheckQueueParams {
    token: Option<String>,
}

/// A token's standing, as the original clients read it.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    token: String,
    status: &'static str,
    position: u64,
    eta_seconds: u64,
    /// While WAITING: seconds until the next poll is worth making (the heartbeat still counts
    /// at any pace inside the grace).
    #[serde(skip_serializing_if = "Option::is_none")]
    poll_after_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    active_until: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    concert_id: Option<i64>,
}

impl TryFrom<pb::TokenStatus> for TokenView {
    type Error = ApiError;

    fn try_from(status: pb::TokenStatus) -> Result<Self, Self::Error> {
        let state = match pb::TokenState::try_from(status.state) {
            Ok(pb::TokenState::Waiting) => "WAITING",
            Ok(pb::TokenState::Active) => "ACTIVE",
            _ => {
                return Err(ApiError::from(tonic::Status::internal(
                    "queue returned no token state",
                )));
            }
        };
        Ok(Self {
            token: status.token,
            status: state,
            position: status.position,
            eta_seconds: status.eta_seconds,
            poll_after_seconds: (state == "WAITING").then(|| status.poll_after_ms.div_ceil(1000)),
            active_until: status.active_until_unix_ms.and_then(rfc3339),
            concert_id: status.concert_id,
        })
    }
}

async fn issue_token(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<IssueTokenBody>,
) -> Result<Json<TokenView>, ApiError> {
    let request = pb::IssueTokenRequest {
        user_id: valid_id(body.user_id, "INVALID_USER_ID", "userId")?,
        concert_id: body
            .concert_id
            .map(|id| valid_id(id, "INVALID_CONCERT_ID", "concertId"))
            .transpose()?,
    };
    let status = state
        .backends
        .queue
        .clone()
        .issue_token(state.backends.request(request))
        .await?
        .into_inner();
    Ok(Json(status.try_into()?))
}

async fn check_queue(
    State(state): State<AppState>,
    QueryParams(params): QueryParams<CheckQueueParams>,
) -> Result<Json<TokenView>, ApiError> {
    let token = params
        .token
        .filter(|token| !token.trim().is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("MISSING_TOKEN", "query parameter `token` is required")
        })?;
    uuid::Uuid::parse_str(token.trim())
        .map_err(|_| ApiError::bad_request("INVALID_TOKEN", "token must be a UUID"))?;
    let status = state
        .backends
        .queue
        .clone()
        .get_status(state.backends.request(pb::GetStatusRequest { token }))
        .await?
        .into_inner();
    Ok(Json(status.try_into()?))
}
