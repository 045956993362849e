//! Wallets: balances in integer minor units that never go negative.

use sqlx::{PgExecutor, PgPool};

use crate::{domain::Wallet, error::ReservationError};

/// SQLSTATE of a CHECK constraint violation (here: the balance ceiling).
const CHECK_VIOLATION: &str = "23514";

/// The user's wallet; a user who never charged one has a balance of 0.
pub async fn balance(pool: &PgPool, user_id: i64) -> Result<Wallet, ReservationError> {
    kit::trace::client(
        "SELECT wallets",
        kit::trace::db::POSTGRES_SELECT,
        async move {
            let row: Option<(i64,)> =
                sqlx::query_as("select balance_minor from wallets where user_id = $1")
                    .bind(user_id)
                    .fetch_optional(pool)
                    .await?;
            Ok(Wallet {
                user_id,
                balance_minor: row.map_or(0, |(balance,)| balance),
            })
        },
    )
    .await
}

/// Adds `amount_minor` in one atomic upsert; returns the wallet with its new balance.
pub async fn charge<'e>(
    db: impl PgExecutor<'e>,
    user_id: i64,
    amount_minor: i64,
) -> Result<Wallet, ReservationError> {
    kit::trace::client("INSERT wallets", kit::trace::db::POSTGRES_INSERT, async move {
    let result: Result<(i64,), sqlx::Error> = sqlx::query_as(
        "insert into wallets as w (user_id, balance_minor) values ($1, $2) \
         on conflict (user_id) do update set balance_minor = w.balance_minor + excluded.balance_minor \
         returning balance_minor",
    )
    .bind(user_id)
    .bind(amount_minor)
    .fetch_one(db)
    .await;
    match result {
        Ok((balance_minor,)) => Ok(Wallet {
            user_id,
            balance_minor,
        }),
        Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some(CHECK_VIOLATION) => {
            Err(ReservationError::BalanceLimit)
        }
        Err(error) => Err(error.into()),
    }
})
.await
}

/// Takes `amount_minor` only if the balance covers it; returns the new balance.
pub async fn debit<'e>(
    db: impl PgExecutor<'e>,
    user_id: i64,
    amount_minor: i64,
) -> Result<i64, ReservationError> {
    kit::trace::client(
        "UPDATE wallets",
        kit::trace::db::POSTGRES_UPDATE,
        async move {
            let row: Option<(i64,)> = sqlx::query_as(
                "update wallets set balance_minor = balance_minor - $2 \
         where user_id = $1 and balance_minor >= $2 returning balance_minor",
            )
            .bind(user_id)
            .bind(amount_minor)
            .fetch_optional(db)
            .await?;
            match row {
                Some((balance,)) => Ok(balance),
                // A zero-price seat needs no wallet at all.
                None if amount_minor == 0 => Ok(0),
                None => Err(ReservationError::InsufficientBalance),
            }
        },
    )
    .await
}
