//! The admission ticker. Every replica runs one, but only the holder of the Redis lease
//! ticks; the rate itself is enforced by the token bucket inside `admit.lua`, so even an
//! overlap during a lease hand-over cannot admit faster than configured.

use std::time::Duration;

use crate::store::QueueStore;

/// Runs admission steps every `tick` until the task is dropped.
pub async fn run(store: QueueStore, tick: Duration) {
    let holder = uuid::Uuid::new_v4().to_string();
    // Long enough to survive a slow tick, short enough that a dead holder is replaced quickly.
    let lease = (tick * 10).max(Duration::from_secs(2));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leading = false;
    loop {
        interval.tick().await;
        match step(&store, &holder, lease).await {
            Ok(now_leading) => {
                if now_leading != leading {
                    tracing::info!(holder, leading = now_leading, "admission lease changed");
                    leading = now_leading;
                }
            }
            Err(error) => tracing::warn!(%error, "admission step failed; retrying next tick"),
        }
    }
}

/// One tick: renew the lease, then admit in every live queue. Returns whether we lead.
async fn step(
    store: &QueueStore,
    holder: &str,
    lease: Duration,
) -> Result<bool, crate::error::QueueError> {
    if !store.hold_lease(holder, lease).await? {
        return Ok(false);
    }
    for queue in store.queues().await? {
        let admission = store.admit(queue).await?;
        if admission.admitted + admission.expired + admission.dropped > 0 {
            tracing::debug!(?queue, ?admission, "admission step");
        }
    }
    Ok(true)
}
