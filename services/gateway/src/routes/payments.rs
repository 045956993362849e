//! `POST /api/payments`: pay a held seat; on success the queue token is released so the next
//! waiter is admitted.

use axum::{Json, Router, extract::State, http::StatusCode, routing::post};
use serde::{Deserialize, Serialize};
use ticketing_proto::{queue::v1 as queue, reservation::v1 as pb};

use crate::{
    AppState,
    error::ApiError,
    extract::{IdempotencyKey, JsonBody},
    routes::{admission::require_active_token, rfc3339, valid_id},
};

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/payments", post(pay))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PayBody {
    reservation_id: i64,
    user_id: i64,
    #[serde(default)]
    token: String,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct PaymentView {
    payment_id: i64,
    reservation_id: i64,
    user_id: i64,
    amount: i64,
    balance: i64,
    status: &'static str,
    paid_at: Option<String>,
}

async fn pay(
    State(state): State<AppState>,
    IdempotencyKey(idempotency_key): IdempotencyKey,
    JsonBody(body): JsonBody<PayBody>,
) -> Result<Json<PaymentView>, ApiError> {
    let user_id = valid_id(body.user_id, "INVALID_USER_ID", "userId")?;
    let reservation_id = valid_id(
        body.reservation_id,
        "INVALID_RESERVATION_ID",
        "reservationId",
    )?;
    if let Err(refused) = require_active_token(&state, &body.token, user_id).await {
        // A retry of a payment that went through arrives after its token was released: with
        // its Idempotency-Key it gets the first answer again, and nothing is paid.
        return match idempotency_key {
            Some(key) if refused.status == StatusCode::UNAUTHORIZED => {
                replay(&state, reservation_id, user_id, key)
                    .await
                    .map_err(|_| refused)
            }
            _ => Err(refused),
        };
    }
    let payment = call_pay(&state, reservation_id, user_id, idempotency_key, false).await?;
    // The payment stands whatever happens here; a failed release only delays the next
    // admission until the token's own expiry.
    let release = state
        .backends
        .queue
        .clone()
        .release_token(state.backends.request(queue::ReleaseTokenRequest {
            token: body.token.trim().to_owned(),
        }))
        .await;
    if let Err(status) = release {
        tracing::warn!(code = ?status.code(), "queue token not released after payment");
    }
    Ok(Json(payment.into()))
}

async fn replay(
    state: &AppState,
    reservation_id: i64,
    user_id: i64,
    key: String,
) -> Result<Json<PaymentView>, ApiError> {
    Ok(Json(
        call_pay(state, reservation_id, user_id, Some(key), true)
            .await?
            .into(),
    ))
}

async fn call_pay(
    state: &AppState,
    reservation_id: i64,
    user_id: i64,
    idempotency_key: Option<String>,
    replay_only: bool,
) -> Result<pb::Payment, ApiError> {
    Ok(state
        .backends
        .reservation
        .clone()
        .pay(state.backends.request(pb::PayRequest {
            reservation_id,
            user_id,
            idempotency_key,
            replay_only,
        }))
        .await?
        .into_inner())
}

impl From<pb::Payment> for PaymentView {
    fn from(payment: pb::Payment) -> Self {
        Self {
            payment_id: payment.id,
            reservation_id: payment.reservation_id,
            user_id: payment.user_id,
            amount: payment.amount_minor,
            balance: payment.balance_after_minor,
            status: "CONFIRMED",
            paid_at: rfc3339(payment.paid_at_unix_ms),
        }
    }
}
