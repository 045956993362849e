//! `POST /queue/issue-token` and `GET /queue/check-queue?token=`.

use axum::{Json, extract::State};
use serde::{Deserialize, Serialize};
use ticketing_proto::queue::v1 as pb;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    error::ApiError,
    extract::{JsonBody, QueryParams},
    identity::Caller,
    routes::admission::{queue_token, token_not_found},
    wire::{rfc3339, valid_id},
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(issue_token))
        .routes(routes!(check_queue))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssueTokenBody {
    /// Required in `trusted` mode (as the original clients send it; the document of a `jwt`
    /// gateway makes it optional); in `jwt` mode, if there, the caller's (else 403 `USER_MISMATCH`).
    #[serde(default)]
    #[schema(
        required = true,
        nullable = false,
        minimum = 1,
        maximum = 9_007_199_254_740_991_i64
    )]
    user_id: Option<i64>,
    /// The concert whose waiting room to join; without it, the shared default room.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 9_007_199_254_740_991_i64)]
    concert_id: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CheckQueueParams {
    /// The queue token issue-token answered.
    #[param(required = true, format = Uuid)]
    token: Option<String>,
}

/// Where a token stands.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TokenState {
    /// In the line: poll again after `pollAfterSeconds`.
    Waiting,
    /// Admitted until `activeUntil`: reserve and pay take the token.
    Active,
}

/// A queue entry (a token's place in its room), as the original clients read it.
#[derive(Serialize, Debug, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueEntryView {
    #[schema(format = Uuid)]
    token: String,
    status: TokenState,
    /// Waiters ahead, plus one; 0 once ACTIVE.
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
    /// While WAITING: an operator has paused admission in this room (absent otherwise).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    paused: bool,
}

impl TryFrom<pb::QueueEntry> for QueueEntryView {
    type Error = ApiError;

    fn try_from(entry: pb::QueueEntry) -> Result<Self, Self::Error> {
        let status = match pb::TokenStatus::try_from(entry.status) {
            Ok(pb::TokenStatus::Waiting) => TokenState::Waiting,
            Ok(pb::TokenStatus::Active) => TokenState::Active,
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
            poll_after_seconds: (status == TokenState::Waiting)
                .then(|| entry.poll_after_ms.div_ceil(1000)),
            active_until: entry.active_until_unix_ms.and_then(rfc3339),
            concert_id: entry.concert_id,
            paused: entry.paused && status == TokenState::Waiting,
        })
    }
}

crate::errors!(IssueTokenErrors {
    400 => ["INVALID_JSON", "INVALID_BODY", "INVALID_USER_ID", "INVALID_CONCERT_ID"],
    401 => ["AUTH_REQUIRED"],
    403 => ["USER_MISMATCH"],
    404 => ["CONCERT_NOT_FOUND"],
});

/// Joins the waiting room of the concert (or the shared one without `concertId`). Only real
/// concerts have rooms: an unknown concert is 404 and nothing is written to the queue.
#[utoipa::path(
    post,
    path = "/queue/issue-token",
    tag = "queue",
    operation_id = "issueToken",
    request_body = IssueTokenBody,
    security((), ("bearerJwt" = [])),
    responses(
        (status = 200, description = "The new token's queue entry", body = QueueEntryView,
            links(("checkQueue" = (
                operation_id = "checkQueue",
                parameters(("token" = "$response.body#/token")),
                description = "Poll the new token's place"
            )))
        ),
        IssueTokenErrors,
    )
)]
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

crate::errors!(CheckQueueErrors {
    400 => ["INVALID_QUERY"],
    401 => ["AUTH_REQUIRED", "TOKEN_MISSING", "TOKEN_NOT_FOUND", "TOKEN_EXPIRED"],
});

/// A token's queue entry. With proven identity, someone else's token does not exist for the caller.
#[utoipa::path(
    get,
    path = "/queue/check-queue",
    tag = "queue",
    operation_id = "checkQueue",
    params(CheckQueueParams),
    security((), ("bearerJwt" = [])),
    responses(
        (status = 200, description = "The token's queue entry", body = QueueEntryView),
        CheckQueueErrors,
    )
)]
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
