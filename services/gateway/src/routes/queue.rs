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
    routes::{
        admission::{queue_token, token_not_found},
        rfc3339, valid_id,
    },
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

/// A queue entry (a token's place in its room), as the original clients read it.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct QueueEntryView {
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

impl TryFrom<pb::QueueEntry> for QueueEntryView {
    type Error = ApiError;

    fn try_from(entry: pb::QueueEntry) -> Result<Self, Self::Error> {
        let status = match pb::TokenStatus::try_from(entry.status) {
            Ok(pb::TokenStatus::Waiting) => "WAITING",
            Ok(pb::TokenStatus::Active) => "ACTIVE",
            _ => {
                return Err(ApiError::from(tonic::Status::internal(
                    "queue returned no token status",
                )));
            }
        };
        Ok(Self {
            token: entry.token,
            status,
            position: entry.position,
            eta_seconds: entry.eta_seconds,
            poll_after_seconds: (status == "WAITING").then(|| entry.poll_after_ms.div_ceil(1000)),
            active_until: entry.active_until_unix_ms.and_then(rfc3339),
            concert_id: entry.concert_id,
        })
    }
}

/// Joins the waiting room of the concert (or the shared one without `concertId`). Only real
/// concerts have rooms: an unknown concert is 404 and nothing is written to the queue.
async fn issue_token(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<IssueTokenBody>,
) -> Result<Json<QueueEntryView>, ApiError> {
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
    let entry = state.backends.issue_token(request).await?;
    Ok(Json(entry.try_into()?))
}

/// A token's queue entry. With proven identity, someone else's token does not exist for the caller.
async fn check_queue(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(params): QueryParams<CheckQueueParams>,
) -> Result<Json<QueueEntryView>, ApiError> {
    let token = queue_token(params.token.as_deref())?.to_owned();
    let entry = state
        .backends
        .get_status(pb::GetStatusRequest { token })
        .await?;
    if !caller.may_see(entry.user_id) {
        return Err(token_not_found());
    }
    Ok(Json(entry.try_into()?))
}
