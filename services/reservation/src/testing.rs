//! For other crates' tests (and this one's): moving a hold's deadline into the past, as if its
//! hold time had run out, without knowing this service's tables.

use sqlx::PgPool;

/// Runs out reservation `only`'s hold, or every live hold when `None`: the reservation's
/// `expires_at` and its seat claim's `held_until` move one second into the past. Paid
/// reservations are untouched (their claims have no deadline).
pub async fn run_out_holds(pool: &PgPool, only: Option<i64>) -> sqlx::Result<()> {
    let mut transaction = pool.begin().await?;
    sqlx::query(
        "update reservations set expires_at = now() - interval '1 second' \
         where status = 'HELD' and ($1::bigint is null or id = $1)",
    )
    .bind(only)
    .execute(&mut *transaction)
    .await?;
    sqlx::query(
        "update seat_claims set held_until = now() - interval '1 second' \
         where held_until is not null and ($1::bigint is null or reservation_id = $1)",
    )
    .bind(only)
    .execute(&mut *transaction)
    .await?;
    transaction.commit().await
}
