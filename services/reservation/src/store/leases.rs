//! Leases: one holder at a time for work every replica could do (the hold sweeper). Taking,
//! renewing and taking over a run-out lease are one statement on the database's clock.

use std::time::Duration;

use sqlx::PgPool;

use crate::error::ReservationError;

/// Takes lease `name` for `holder` until `ttl` from now, or renews it when `holder` has it:
/// true when `holder` holds it now. Someone else's lease is taken over only once it has run out.
pub async fn hold(
    pool: &PgPool,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Result<bool, ReservationError> {
    let held: Option<(String,)> = sqlx::query_as(
        "insert into leases (name, holder, expires_at) \
         values ($1, $2, now() + $3 * interval '1 millisecond') \
         on conflict (name) do update set holder = excluded.holder, expires_at = excluded.expires_at \
         where leases.holder = excluded.holder or leases.expires_at <= now() \
         returning holder",
    )
    .bind(name)
    .bind(holder)
    .bind(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
    .fetch_optional(pool)
    .await?;
    Ok(held.is_some())
}

/// Gives lease `name` up if `holder` has it, so the next to ask takes it at once.
pub async fn release(pool: &PgPool, name: &str, holder: &str) -> Result<(), ReservationError> {
    sqlx::query("delete from leases where name = $1 and holder = $2")
        .bind(name)
        .bind(holder)
        .execute(pool)
        .await?;
    Ok(())
}
