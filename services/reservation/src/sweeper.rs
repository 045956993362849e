//! Background housekeeping: marks run-out holds EXPIRED and prunes old idempotency answers.
//! Correctness never waits for it: reads and holds treat a run-out hold as free at once.

use std::time::Duration;

use sqlx::PgPool;

use crate::store::{holds, idempotency};

const BATCH: i64 = 1_000;

pub async fn run(pool: PgPool, every: Duration, idempotency_retention_hours: u64) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u64 = 0;
    loop {
        interval.tick().await;
        match holds::sweep(&pool, BATCH).await {
            Ok(0) => {}
            Ok(marked) => tracing::debug!(marked, "expired holds swept"),
            Err(error) => tracing::warn!(%error, "hold sweep failed; retrying next tick"),
        }
        // Idempotency answers are pruned far less often than holds are swept.
        ticks += 1;
        if ticks % 600 == 1
            && let Err(error) = idempotency::prune(&pool, idempotency_retention_hours).await
        {
            tracing::warn!(%error, "idempotency prune failed");
        }
    }
}
