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
    identity::Caller,
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
    /// Required in `trusted` mode; in `jwt` mode optional and, if there, the caller's.
    #[serde(default)]
    user_id: Option<i64>,
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

impl TryFrom<pb::QueueEntry> for TokenView {
    type Error = ApiError;

    fn try_from(status: pb::QueueEntry) -> Result<Self, Self::Error> {
        let state = match pb::TokenStatus::try_from(status.status) {
            Ok(pb::TokenStatus::Waiting) => "WAITING",
            Ok(pb::TokenStatus::Active) => "ACTIVE",
            _ => {
                return Err(ApiError::from(tonic::Status::internal(
                    "queue returned no token status",
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

/// Joins the waiting room of the concert (or the shared one without `concertId`). Only real
/// concerts have rooms: an unknown concert is 404 and nothing is written to the queue.
async fn issue_token(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<IssueTokenBody>,
) -> Result<Json<TokenView>, ApiError> {
    let user_id = caller.acting_user(body.user_id, "userId")?;
    let room = match body.concert_id {
        None => None,
        Some(id) => {
            let concert_id = valid_id(id, "INVALID_CONCERT_ID", "concertId")?;
            state.rooms.of_concert(&state.backends, concert_id).await?
        }
    };
    let request = pb::IssueTokenRequest {
        user_id,
        concert_id: room,
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

/// A token's standing. With proven identity, someone else's token does not exist for the caller.
async fn check_queue(
    State(state): State<AppState>,
    caller: Caller,
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
    if !caller.may_see(status.user_id) {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "TOKEN_NOT_FOUND",
            "unknown queue token",
        ));
    }
    Ok(Json(status.try_into()?))
}
