//! `GET /api/users/{userId}/balance` and `POST /api/users/{userId}/balance/charge`.

use axum::{
    Json, Router,
    extract::State,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use ticketing_proto::reservation::v1 as pb;

use crate::{
    AppState,
    error::ApiError,
    extract::{IdempotencyKey, JsonBody, PathParams},
    identity::Caller,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/users/{user_id}/balance", get(balance))
        .route("/api/users/{user_id}/balance/charge", post(charge))
}

#[derive(Deserialize)]
pub struct ChargeBody {
    amount: i64,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct BalanceView {
    user_id: i64,
    balance: i64,
}

impl From<pb::Wallet> for BalanceView {
    fn from(wallet: pb::Wallet) -> Self {
        Self {
            user_id: wallet.user_id,
            balance: wallet.balance_minor,
        }
    }
}

/// A wallet is its owner's alone (`jwt` mode): another user's id in the path is 403.
async fn balance(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(user_id): PathParams<i64>,
) -> Result<Json<BalanceView>, ApiError> {
    let user_id = caller.acting_user(Some(user_id), "userId")?;
    let wallet = state
        .backends
        .get_balance(pb::GetBalanceRequest { user_id })
        .await?;
    Ok(Json(wallet.into()))
}

async fn charge(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(user_id): PathParams<i64>,
    IdempotencyKey(idempotency_key): IdempotencyKey,
    JsonBody(body): JsonBody<ChargeBody>,
) -> Result<Json<BalanceView>, ApiError> {
    let user_id = caller.acting_user(Some(user_id), "userId")?;
    let wallet = state
        .backends
        .charge_wallet(pb::ChargeWalletRequest {
            user_id,
            amount_minor: body.amount,
            idempotency_key,
        })
        .await?;
    Ok(Json(wallet.into()))
}
