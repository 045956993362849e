//! The gate in front of reserve and pay: an ACTIVE queue token bound to the caller's userId.
//! What it yields is the waiting room that admitted the caller: the reservation service
//! refuses a hold or payment on a concert of another room.

use axum::http::StatusCode;
use ticketing_proto::{queue::v1 as pb, reservation::v1::Room};

use crate::{AppState, error::ApiError};

/// The room of `token` when it is ACTIVE and bound to `user_id`: missing, unknown or expired
/// → 401; still waiting or another user's → 403.
pub async fn require_active_token(
    state: &AppState,
    token: &str,
    user_id: i64,
) -> Result<Room, ApiError> {
    let token = token.trim();
    if token.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "TOKEN_MISSING",
            "a queue token is required",
        ));
    }
    if uuid::Uuid::parse_str(token).is_err() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "TOKEN_NOT_FOUND",
            "unknown queue token",
        ));
    }
    let validation = state
        .backends
        .queue
        .clone()
        .validate_token(state.backends.request(pb::ValidateTokenRequest {
            token: token.to_owned(),
            user_id,
        }))
        .await?
        .into_inner();
    match validation.verdict() {
        pb::TokenVerdict::Valid => Ok(Room {
            concert_id: validation.concert_id,
        }),
        pb::TokenVerdict::NotFound => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "TOKEN_NOT_FOUND",
            "unknown queue token",
        )),
        pb::TokenVerdict::Expired => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "TOKEN_EXPIRED",
            "the queue token has expired",
        )),
        pb::TokenVerdict::NotAdmitted => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "TOKEN_NOT_ACTIVE",
            "still waiting in the queue: poll check-queue until ACTIVE",
        )),
        pb::TokenVerdict::WrongUser => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "TOKEN_USER_MISMATCH",
            "the queue token belongs to another user",
        )),
        pb::TokenVerdict::Unspecified => Err(ApiError::from(tonic::Status::internal(
            "queue gave no verdict",
        ))),
    }
}
