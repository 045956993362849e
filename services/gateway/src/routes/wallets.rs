//! `GET /api/users/{userId}/balance` and `POST /api/users/{userId}/balance/charge`.

use axum::{Json, extract::State};
use serde::{Deserialize, Serialize};
use ticketing_proto::reservation::v1 as pb;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    error::ApiError,
    extract::{IdempotencyKey, JsonBody, PathParams},
    identity::Caller,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(balance))
        .routes(routes!(charge))
}

#[derive(Deserialize, ToSchema)]
pub struct ChargeBody {
    /// What to add, in the currency's minor unit: more than 0, at most
    /// `RESERVATION_MAX_CHARGE_MINOR` (default 100000000, above it 400 `AMOUNT_TOO_LARGE`).
    #[schema(minimum = 1, maximum = 100_000_000)]
    amount: i64,
}

#[derive(Serialize, Debug, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BalanceView {
    user_id: i64,
    /// In the currency's minor unit.
    balance: i64,
}

crate::errors!(BalanceErrors {
    400 => ["INVALID_PATH", "INVALID_USER_ID"],
    401 => ["AUTH_REQUIRED"],
    403 => ["USER_MISMATCH"],
});

crate::errors!(ChargeErrors {
    400 => ["INVALID_PATH", "INVALID_USER_ID", "INVALID_JSON", "INVALID_BODY", "INVALID_AMOUNT",
            "AMOUNT_TOO_LARGE", "BALANCE_LIMIT_EXCEEDED", "INVALID_IDEMPOTENCY_KEY"],
    401 => ["AUTH_REQUIRED"],
    403 => ["USER_MISMATCH"],
    409 => ["IDEMPOTENCY_KEY_REUSED"],
});

impl From<pb::Wallet> for BalanceView {
    fn from(wallet: pb::Wallet) -> Self {
        Self {
            user_id: wallet.user_id,
            balance: wallet.balance_minor,
        }
    }
}

/// A wallet is its owner's alone (`jwt` mode): another user's id in the path is 403.
#[utoipa::path(
    get,
    path = "/api/users/{user_id}/balance",
    tag = "wallets",
    operation_id = "getBalance",
    params(("user_id" = i64, Path, description = "The wallet's owner", minimum = 1, maximum = 9_007_199_254_740_991_i64)),
    security((), ("bearerJwt" = [])),
    responses(
        (status = 200, description = "The balance (0 for a new user)", body = BalanceView),
        BalanceErrors,
    )
)]
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

/// Tops the wallet up.
#[utoipa::path(
    post,
    path = "/api/users/{user_id}/balance/charge",
    tag = "wallets",
    operation_id = "chargeBalance",
    params(
        ("user_id" = i64, Path, description = "The wallet's owner", minimum = 1, maximum = 9_007_199_254_740_991_i64),
        crate::openapi::parameters::IdempotencyKeyHeader,
    ),
    request_body = ChargeBody,
    security((), ("bearerJwt" = [])),
    responses(
        (status = 200, description = "The new balance", body = BalanceView),
        ChargeErrors,
    )
)]
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
