//! The gate in front of reserve and pay: an ACTIVE queue token bound to the caller's userId.
//! What it yields is the waiting room that admitted the caller: the reservation service
//! refuses a hold or payment on a concert of another room.

use axum::http::StatusCode;
use ticketing_proto::{queue::v1 as pb, reservation::v1::Room};

use crate::{AppState, error::ApiError};

/// A queue token as the caller sent it, trimmed: the same answers on every route that takes
/// one — missing → 401 `TOKEN_MISSING`, not a token this system could have issued → 401
/// `TOKEN_NOT_FOUND` (what an unknown one gets too).
pub fn queue_token(raw: Option<&str>) -> Result<&str, ApiError> {
    let token = raw.map(str::trim).unwrap_or_default();
    if token.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "TOKEN_MISSING",
            "a queue token is required",
        ));
    }
    if uuid::Uuid::parse_str(token).is_err() {
        return Err(token_not_found());
    }
    Ok(token)
}

/// 401 `TOKEN_NOT_FOUND`: unknown, dropped, or (with proven identity) someone else's token.
pub fn token_not_found() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "TOKEN_NOT_FOUND",
        "unknown queue token",
    )
}

/// The room of `token` when it is ACTIVE and bound to `user_id`: missing, unknown or expired
/// → 401; still waiting or another user's → 403.
pub async fn require_active_token(
    state: &AppState,
    token: &str,
    user_id: i64,
) -> Result<Room, ApiError> {
    let token = queue_token(Some(token))?;
    let validation = state
        .backends
        .validate_token(pb::ValidateTokenRequest {
            token: token.to_owned(),
            user_id,
        })
        .await?;
    match validation.verdict() {
        pb::TokenVerdict::Valid => Ok(Room {
            concert_id: validation.concert_id,
        }),
        pb::TokenVerdict::NotFound => Err(token_not_found()),
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
