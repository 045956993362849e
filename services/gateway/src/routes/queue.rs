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
    /// In the pre-queue of a scheduled room: at `opensAt` everyone in it is put in a uniformly
    /// random order, ahead of later joiners, so there is no position yet and joining earlier
    /// gives no advantage. Poll again after `pollAfterSeconds`.
    Prequeue,
    /// In line, the place kept, but no seat of the concert is free, so nobody is admitted;
    /// `seatsMayReturn` says whether held seats may still come back. Poll again after
    /// `pollAfterSeconds`.
    SoldOut,
}

/// A queue entry (a token's place in its room), as the original clients read it. WAITING and
/// ACTIVE answers carry only the original fields.
#[derive(Serialize, Debug, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueEntryView {
    #[schema(format = Uuid)]
    token: String,
    status: TokenState,
    /// Waiters ahead, plus one (kept while SOLD_OUT); 0 once ACTIVE, and in the PREQUEUE,
    /// where the order is not drawn yet.
    position: u64,
    /// Estimated seconds until admission while WAITING; 0 otherwise (nobody is admitted from
    /// the PREQUEUE or while SOLD_OUT, so no estimate would hold).
    eta_seconds: u64,
    /// Unless ACTIVE: seconds until the next poll is worth making (the heartbeat still counts
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
    /// While PREQUEUE: when the order is drawn and admission starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime, nullable = false)]
    opens_at: Option<String>,
    /// While SOLD_OUT: true when some seats are only held by fans who have not paid yet (if a
    /// hold runs out the seat comes back and the line moves again); false when every seat is
    /// sold.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    seats_may_return: Option<bool>,
    /// While ACTIVE and before the first hold or payment: unless one comes by then, the turn
    /// passes to the next fan (`QUEUE_ADMITTED_IDLE_SECS` after admission). Absent once one has.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime, nullable = false)]
    choose_by: Option<String>,
}

impl TryFrom<pb::QueueEntry> for QueueEntryView {
    type Error = ApiError;

    fn try_from(entry: pb::QueueEntry) -> Result<Self, Self::Error> {
        let status = match pb::TokenStatus::try_from(entry.status) {
            Ok(pb::TokenStatus::Waiting) => TokenState::Waiting,
            Ok(pb::TokenStatus::Active) => TokenState::Active,
            Ok(pb::TokenStatus::Prequeue) => TokenState::Prequeue,
            Ok(pb::TokenStatus::SoldOut) => TokenState::SoldOut,
            Ok(pb::TokenStatus::Unspecified) | Err(_) => {
                return Err(ApiError::from(tonic::Status::internal(
                    "queue returned no token status",
                )));
            }
        };
        let waiting = status == TokenState::Waiting;
        let held_back = matches!(status, TokenState::Prequeue | TokenState::SoldOut);
        Ok(Self {
            token: entry.token,
            status,
            // No place before the draw; a sold-out waiter keeps theirs.
            position: if status == TokenState::Prequeue {
                0
            } else {
                entry.position
            },
            eta_seconds: if held_back { 0 } else { entry.eta_seconds },
            poll_after_seconds: (status != TokenState::Active)
                .then(|| entry.poll_after_ms.div_ceil(1000)),
            active_until: entry.active_until_unix_ms.and_then(rfc3339),
            concert_id: entry.concert_id,
            paused: entry.paused && waiting,
            opens_at: entry
                .opens_at_unix_ms
                .filter(|_| status == TokenState::Prequeue)
                .and_then(rfc3339),
            seats_may_return: (status == TokenState::SoldOut).then_some(entry.seats_may_return),
            choose_by: entry
                .choose_by_unix_ms
                .filter(|_| status == TokenState::Active)
                .and_then(rfc3339),
        })
    }
}

crate::errors!(IssueTokenErrors {
    400 => ["INVALID_JSON", "INVALID_BODY", "INVALID_USER_ID", "INVALID_CONCERT_ID"],
    401 => ["AUTH_REQUIRED"],
    403 => ["USER_MISMATCH"],
    404 => ["CONCERT_NOT_FOUND"],
    409 => ["ROOM_NOT_OPEN"],
});

/// Joins the waiting room of the concert (or the shared one without `concertId`). Only real
/// concerts have rooms: an unknown concert is 404 and nothing is written to the queue. A room
/// scheduled to open takes joiners from its `prequeueOpensAt` (into the PREQUEUE); before that,
/// 409 `ROOM_NOT_OPEN`, whose message says when it opens.
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
