//! A fixed load over a set of connections: each connection's turn comes every
//! `connections ÷ rate` seconds, the connections staggered across that period, and one that is
//! behind sends at once (so past what the system answers, it is a closed loop again). Settings
//! compared at the same fixed load are charged for the same work: at saturation, CPU per
//! request moves with how many requests each wake-up serves, so anything that takes CPU
//! elsewhere (a span collector on the same cores) would raise every process's figure.

use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

/// One connection's turns; unpaced, every turn is now.
pub struct Pace {
    turns: Option<Interval>,
}

impl Pace {
    /// Connection `index` of `connections` sharing `rate` requests per second from `start`
    /// (`None` or a rate of 0: as fast as answered).
    pub fn new(rate: Option<f64>, connections: u64, index: u64, start: Instant) -> Self {
        let turns = rate.filter(|rate| *rate > 0.0).map(|rate| {
            let connections = connections.max(1) as f64;
            let period = Duration::from_secs_f64(connections / rate);
            let offset = period.mul_f64(index as f64 / connections);
            let mut turns = tokio::time::interval_at(start + offset, period);
            turns.set_missed_tick_behavior(MissedTickBehavior::Delay);
            turns
        });
        Self { turns }
    }

    /// Waits for this connection's next turn.
    pub async fn turn(&mut self) {
        if let Some(turns) = &mut self.turns {
            turns.tick().await;
        }
    }
}
