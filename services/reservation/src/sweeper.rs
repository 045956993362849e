//! Background housekeeping: marks run-out holds EXPIRED and prunes old idempotency answers.
//! Correctness never waits for it: reads and holds treat a run-out hold as free at once.
//!
//! Every replica runs a sweeper, but only the holder of the `sweeper` lease
//! (`store::leases`) sweeps: it renews the lease each tick and gives it up when its replica
//! stops, and a replica that dies holds it until it runs out (ten ticks, at least 2 s), after
//! which the next sweeper to ask takes over. Even an overlap could not expire a hold twice:
//! each sweep statement skips rows another has locked and changes only HELD rows.

use std::{future::Future, time::Duration};

use sqlx::PgPool;

use crate::{
    error::ReservationError,
    store::{holds, idempotency, leases},
};

const BATCH: i64 = 1_000;
/// The lease's name in the `leases` table.
pub const LEASE: &str = "sweeper";

/// What one tick did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Whether this sweeper held the lease (nothing else happens without it).
    pub leading: bool,
    /// Holds marked EXPIRED.
    pub marked: u64,
}

/// One replica's sweeper: its lease identity and how many ticks it has swept.
pub struct Sweeper {
    pool: PgPool,
    holder: String,
    lease: Duration,
    idempotency_retention_hours: u64,
    sweeps: u64,
    leading: bool,
}

impl Sweeper {
    /// A sweeper ticking every `every`, with a fresh lease identity.
    pub fn new(pool: PgPool, every: Duration, idempotency_retention_hours: u64) -> Self {
        Self {
            pool,
            holder: uuid::Uuid::new_v4().to_string(),
            lease: (every * 10).max(Duration::from_secs(2)),
            idempotency_retention_hours,
            sweeps: 0,
            leading: false,
        }
    }

    /// The same sweeper with a lease of `lease` (tests take over sooner).
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// One tick: take or renew the lease, then sweep if held.
    pub async fn tick(&mut self) -> Result<SweepReport, ReservationError> {
        let leading = leases::hold(&self.pool, LEASE, &self.holder, self.lease).await?;
        if leading != self.leading {
            tracing::info!(holder = %self.holder, leading, "sweeper lease changed");
            self.leading = leading;
        }
        if !leading {
            return Ok(SweepReport::default());
        }
        let marked = holds::sweep(&self.pool, BATCH).await?;
        // Idempotency answers are pruned far less often than holds are swept.
        if self.sweeps.is_multiple_of(600)
            && let Err(error) =
                idempotency::prune(&self.pool, self.idempotency_retention_hours).await
        {
            tracing::warn!(%error, "idempotency prune failed");
        }
        self.sweeps += 1;
        Ok(SweepReport {
            leading: true,
            marked,
        })
    }

    /// Gives the lease up, if held, so another replica's sweeper takes over at its next tick.
    pub async fn release(&mut self) -> Result<(), ReservationError> {
        if self.leading {
            leases::release(&self.pool, LEASE, &self.holder).await?;
            self.leading = false;
        }
        Ok(())
    }
}

/// Ticks `sweeper` every `every` until `stop`, then gives its lease up.
pub async fn run(mut sweeper: Sweeper, every: Duration, stop: impl Future<Output = ()>) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            _ = interval.tick() => match sweeper.tick().await {
                Ok(SweepReport { marked: 0, .. }) => {}
                Ok(SweepReport { marked, .. }) => tracing::debug!(marked, "expired holds swept"),
                Err(error) => tracing::warn!(%error, "hold sweep failed; retrying next tick"),
            },
        }
    }
    if let Err(error) = sweeper.release().await {
        tracing::warn!(%error, "the sweeper lease was not given up; it runs out by itself");
    }
}
