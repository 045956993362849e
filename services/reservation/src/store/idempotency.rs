//! First answers of requests made with an Idempotency-Key. The key row is written in the same
//! transaction as the operation: a concurrent retry waits on it and then reads the answer; a
//! failed first attempt leaves no row, so its retry runs again.

use futures::future::BoxFuture;
use sqlx::{PgConnection, PgPool};

use crate::{domain::IdempotencyKey, error::ReservationError};

/// Which request a key belongs to.
pub struct Scope<'a> {
    pub operation: &'static str,
    pub user_id: i64,
    pub key: &'a IdempotencyKey,
    /// The request's parameters: the same key with other parameters is refused.
    pub fingerprint: String,
}

impl<'a> Scope<'a> {
    pub fn new(
        operation: &'static str,
        user_id: i64,
        key: &'a IdempotencyKey,
        fingerprint: String,
    ) -> Self {
        Self {
            operation,
            user_id,
            key,
            fingerprint,
        }
    }
}

/// Runs `operation` in a transaction once per key; later calls with the key get the first
/// answer.
pub async fn once<T, F>(
    pool: &PgPool,
    scope: Scope<'_>,
    operation: F,
) -> Result<T, ReservationError>
where
    T: prost::Message + Default,
    F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, Result<T, ReservationError>>,
{
    let mut tx = pool.begin().await?;
    let claimed = sqlx::query(
        "insert into idempotency_keys (operation, user_id, key, fingerprint) values ($1, $2, $3, $4) \
         on conflict do nothing",
    )
    .bind(scope.operation)
    .bind(scope.user_id)
    .bind(scope.key.as_str())
    .bind(&scope.fingerprint)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !claimed {
        let (fingerprint, response): (String, Option<Vec<u8>>) = sqlx::query_as(
            "select fingerprint, response from idempotency_keys where operation = $1 and user_id = $2 and key = $3",
        )
        .bind(scope.operation)
        .bind(scope.user_id)
        .bind(scope.key.as_str())
        .fetch_one(&mut *tx)
        .await?;
        tx.rollback().await?;
        if fingerprint != scope.fingerprint {
            return Err(ReservationError::IdempotencyKeyReused);
        }
        let response = response
            .ok_or_else(|| ReservationError::Corrupt("idempotency row without answer".into()))?;
        return T::decode(response.as_slice())
            .map_err(|error| ReservationError::Corrupt(error.to_string()));
    }
    let answer = operation(&mut tx).await?;
    sqlx::query("update idempotency_keys set response = $4 where operation = $1 and user_id = $2 and key = $3")
        .bind(scope.operation)
        .bind(scope.user_id)
        .bind(scope.key.as_str())
        .bind(answer.encode_to_vec())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(answer)
}

/// The first answer stored for `scope`, without running anything.
pub async fn replay<T: prost::Message + Default>(
    pool: &PgPool,
    scope: Scope<'_>,
) -> Result<T, ReservationError> {
    let row: Option<(String, Option<Vec<u8>>)> = sqlx::query_as(
        "select fingerprint, response from idempotency_keys where operation = $1 and user_id = $2 and key = $3",
    )
    .bind(scope.operation)
    .bind(scope.user_id)
    .bind(scope.key.as_str())
    .fetch_optional(pool)
    .await?;
    match row {
        Some((fingerprint, _)) if fingerprint != scope.fingerprint => {
            Err(ReservationError::IdempotencyKeyReused)
        }
        Some((_, Some(response))) => T::decode(response.as_slice())
            .map_err(|error| ReservationError::Corrupt(error.to_string())),
        // Absent, or a first attempt still in flight (its row is not committed, so not seen).
        _ => Err(ReservationError::NothingToReplay),
    }
}

/// Forgets answers older than `retention_hours`.
pub async fn prune(pool: &PgPool, retention_hours: u64) -> Result<u64, ReservationError> {
    let hours = i32::try_from(retention_hours).unwrap_or(i32::MAX);
    Ok(sqlx::query(
        "delete from idempotency_keys where created_at < now() - make_interval(hours => $1)",
    )
    .bind(hours)
    .execute(pool)
    .await?
    .rows_affected())
}
