//! `POST /api/payments`: pay a held seat; on success the queue token is released so the next
//! waiter is admitted.

use axum::{Json, extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use ticketing_proto::{queue::v1 as queue, reservation::v1 as pb};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    error::ApiError,
    extract::{IdempotencyKey, JsonBody},
    identity::Caller,
    routes::{admission::require_active_token, reservations::reservation_not_found},
    wire::{rfc3339, valid_id},
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(pay))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PayBody {
    #[schema(minimum = 1, maximum = 9_007_199_254_740_991_i64)]
    reservation_id: i64,
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
    /// The ACTIVE queue token the seat was held with (released once paid).
    #[serde(default)]
    #[schema(required = true, format = Uuid)]
    token: String,
}

/// A payment is only ever answered once it is confirmed.
#[derive(Serialize, Debug, Clone, Copy, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    Confirmed,
}

#[derive(Serialize, Debug, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentView {
    payment_id: i64,
    reservation_id: i64,
    user_id: i64,
    /// What was paid, in the currency's minor unit.
    amount: i64,
    /// The wallet's balance after the payment.
    balance: i64,
    status: PaymentStatus,
    #[schema(required = true, format = DateTime)]
    paid_at: Option<String>,
}

crate::errors!(PayErrors {
    400 => ["INVALID_JSON", "INVALID_BODY", "INVALID_USER_ID", "INVALID_RESERVATION_ID",
            "INVALID_IDEMPOTENCY_KEY", "INSUFFICIENT_BALANCE"],
    401 => ["AUTH_REQUIRED", "TOKEN_MISSING", "TOKEN_NOT_FOUND", "TOKEN_EXPIRED"],
    403 => ["USER_MISMATCH", "TOKEN_NOT_ACTIVE", "TOKEN_USER_MISMATCH", "TOKEN_WRONG_ROOM",
            "NOT_YOUR_RESERVATION"],
    404 => ["RESERVATION_NOT_FOUND"],
    409 => ["HOLD_EXPIRED", "ALREADY_PAID", "IDEMPOTENCY_KEY_REUSED"],
});

/// Pays a held seat from the user's wallet; the queue token is released, so the next waiter is
/// admitted. A retry with the same `Idempotency-Key` gets the first answer, even after the
/// token was released.
#[utoipa::path(
    post,
    path = "/api/payments",
    tag = "payments",
    operation_id = "pay",
    request_body = PayBody,
    params(crate::openapi::parameters::IdempotencyKeyHeader),
    security((), ("bearerJwt" = [])),
    responses(
        (status = 200, description = "Paid: the seat is the user's", body = PaymentView),
        PayErrors,
    )
)]
async fn pay(
    State(state): State<AppState>,
    caller: Caller,
    IdempotencyKey(idempotency_key): IdempotencyKey,
    JsonBody(body): JsonBody<PayBody>,
) -> Result<Json<PaymentView>, ApiError> {
    let user_id = caller.acting_user(body.user_id, "userId")?;
    let reservation_id = valid_id(
        body.reservation_id,
        "INVALID_RESERVATION_ID",
        "reservationId",
    )?;
    let admitted_by = match require_active_token(&state, &body.token, user_id).await {
        Ok(room) => room,
        Err(refused) => {
            // A retry of a payment that went through arrives after its token was released:
            // with its Idempotency-Key it gets the first answer again, and nothing is paid.
            return match idempotency_key {
                Some(key) if refused.status == StatusCode::UNAUTHORIZED => {
                    replay(&state, reservation_id, user_id, key)
                        .await
                        .map_err(|_| refused)
                }
                _ => Err(refused),
            };
        }
    };
    let payment = call_pay(
        &state,
        reservation_id,
        user_id,
        idempotency_key,
        Some(admitted_by),
    )
    .await
    .map_err(|error| hide_others(&caller, error))?;
    // The payment stands whatever happens to the release; a failed one only delays the next
    // admission until the token's own expiry. Its deadline is what is left of the request's,
    // so a slow queue cannot turn a committed payment into a 504.
    let release = state
        .backends
        .release_token(queue::ReleaseTokenRequest {
            token: body.token.trim().to_owned(),
        })
        .await;
    if let Err(status) = release {
        tracing::warn!(code = ?status.code(), "queue token not released after payment");
    }
    Ok(Json(payment.into()))
}

/// With proven identity, someone else's reservation does not exist for the caller.
fn hide_others(caller: &Caller, error: ApiError) -> ApiError {
    if caller.is_verified() && error.code == "NOT_YOUR_RESERVATION" {
        reservation_not_found()
    } else {
        error
    }
}

async fn replay(
    state: &AppState,
    reservation_id: i64,
    user_id: i64,
    key: String,
) -> Result<Json<PaymentView>, ApiError> {
    Ok(Json(
        call_pay(state, reservation_id, user_id, Some(key), None)
            .await?
            .into(),
    ))
}

async fn call_pay(
    state: &AppState,
    reservation_id: i64,
    user_id: i64,
    idempotency_key: Option<String>,
    admitted_by: Option<pb::Room>,
) -> Result<pb::Payment, ApiError> {
    Ok(state
        .backends
        .pay(pb::PayRequest {
            reservation_id,
            user_id,
            idempotency_key,
            // Without an admitting room only a stored answer can be replayed.
            replay_only: admitted_by.is_none(),
            admitted_by,
        })
        .await?)
}

impl From<pb::Payment> for PaymentView {
    fn from(payment: pb::Payment) -> Self {
        Self {
            payment_id: payment.id,
            reservation_id: payment.reservation_id,
            user_id: payment.user_id,
            amount: payment.amount_minor,
            balance: payment.balance_after_minor,
            status: PaymentStatus::Confirmed,
            paid_at: rfc3339(payment.paid_at_unix_ms),
        }
    }
}
