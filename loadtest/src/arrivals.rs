//! Open-model arrivals: virtual users start on a fixed schedule (user i at i / rate seconds),
//! whatever the server does. A slow server gets more concurrent users, not fewer requests —
//! the closed-loop mistake (coordinated omission) the original Locust runs could not avoid.

use std::{future::Future, sync::Arc, time::Duration};

use serde::Serialize;
use tokio::{task::JoinSet, time::Instant};

use crate::recorder::Recorder;

#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrivals {
    /// Users started.
    pub arrived: u64,
    /// Users whose journey ended before the deadline.
    pub finished: u64,
    /// Users still going at the deadline (stopped there).
    pub cut_off: u64,
}

/// When user `index` arrives, counted from the start of the run.
pub fn arrival_offset(index: u64, rate: f64) -> Duration {
    Duration::from_secs_f64(index as f64 / rate.max(f64::MIN_POSITIVE))
}

/// Starts `users` users at `rate` per second, each running `journey(index)`, until every one
/// has finished or `until` passed; users still going then are cancelled.
pub async fn open_model<F, Fut>(
    rate: f64,
    users: u64,
    until: Instant,
    recorder: &Arc<Recorder>,
    journey: F,
) -> Arrivals
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let stop = async move {
        tokio::time::sleep_until(until).await;
        until
    };
    open_model_until(rate, users, stop, recorder, journey).await
}

/// As [`open_model`], but users arrive (at most `users` of them) until `stop` completes; it
/// answers when the journeys still going are cut off. A run whose length is not known in
/// advance (one that waits for its faults to end) stops its arrivals this way.
pub async fn open_model_until<F, Fut>(
    rate: f64,
    users: u64,
    stop: impl Future<Output = Instant>,
    recorder: &Arc<Recorder>,
    journey: F,
) -> Arrivals
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let started = Instant::now();
    let mut running = JoinSet::new();
    let mut outcome = Arrivals {
        arrived: 0,
        finished: 0,
        cut_off: 0,
    };
    let mut stop = std::pin::pin!(stop);
    let mut cut_off_at: Option<Instant> = None;
    loop {
        let next_arrival = (cut_off_at.is_none() && outcome.arrived < users)
            .then(|| started + arrival_offset(outcome.arrived, rate));
        if next_arrival.is_none() && running.is_empty() {
            break;
        }
        tokio::select! {
            biased;
            () = tokio::time::sleep_until(cut_off_at.unwrap_or(started)), if cut_off_at.is_some() => break,
            at = &mut stop, if cut_off_at.is_none() => cut_off_at = Some(at),
            Some(_) = running.join_next(), if !running.is_empty() => outcome.finished += 1,
            () = tokio::time::sleep_until(next_arrival.unwrap_or(started)), if next_arrival.is_some() => {
                let user = recorder.user();
                let journey = journey(outcome.arrived);
                running.spawn(async move {
                    let _alive = user;
                    journey.await;
                });
                outcome.arrived += 1;
            }
        }
    }
    outcome.cut_off = running.len() as u64;
    running.shutdown().await;
    outcome
}

/// A think time drawn uniformly from `[min, max]`.
pub fn think_time(min: Duration, max: Duration) -> Duration {
    if max <= min {
        return min;
    }
    let span = (max - min).as_micros() as u64;
    min + Duration::from_micros(fastrand::u64(0..=span))
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use tokio::time::Instant;

    use super::{arrival_offset, open_model, open_model_until, think_time};
    use crate::recorder::Recorder;

    #[test]
    fn arrivals_are_spaced_by_the_rate_alone() {
        assert_eq!(arrival_offset(0, 1000.0), Duration::ZERO);
        assert_eq!(arrival_offset(2000, 1000.0), Duration::from_secs(2));
        assert_eq!(arrival_offset(7, 7.0), Duration::from_secs(1));
    }

    #[test]
    fn think_times_stay_inside_their_bounds() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(3));
        for _ in 0..1000 {
            let t = think_time(min, max);
            assert!(t >= min && t <= max, "{t:?}");
        }
        assert_eq!(think_time(max, min), max);
    }

    // Paused time: the runtime's clock jumps to the next timer, so the schedule is exact and
    // the test waits for nothing.
    #[tokio::test(start_paused = true)]
    async fn users_arrive_on_schedule_and_those_still_going_at_the_deadline_are_cut_off() {
        let recorder = Arc::new(Recorder::new());
        let started = Instant::now();
        let arrivals = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = arrivals.clone();
        // 10 users/s for 20 users; user i stays i seconds; the run ends after 5 s.
        let outcome = open_model(
            10.0,
            20,
            Instant::now() + Duration::from_secs(5),
            &recorder,
            move |index| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push((index, Instant::now() - started));
                    tokio::time::sleep(Duration::from_secs(index)).await;
                }
            },
        )
        .await;
        assert_eq!(outcome.arrived, 20);
        let arrivals = arrivals.lock().unwrap();
        for (index, at) in arrivals.iter() {
            assert_eq!(*at, arrival_offset(*index, 10.0), "user {index}");
        }
        // User i (arriving at i/10 s) ends at 1.1·i s: users 0..=4 end before 5 s.
        assert_eq!(outcome.finished, 5);
        assert_eq!(outcome.cut_off, 15);
        assert_eq!(recorder.active_users(), 0, "cancelled users are not alive");
    }

    #[tokio::test(start_paused = true)]
    async fn arrivals_stop_when_told_and_journeys_under_way_get_until_the_cut_off() {
        let recorder = Arc::new(Recorder::new());
        let started = Instant::now();
        // 10 users/s with no cap on their number; each stays 1.5 s. Arrivals stop at 3 s and
        // journeys still going may finish until 4 s: users arriving from 2.5 s on are cut off.
        let stop = async move {
            tokio::time::sleep_until(started + Duration::from_secs(3)).await;
            Instant::now() + Duration::from_secs(1)
        };
        let outcome = open_model_until(10.0, u64::MAX, stop, &recorder, |_| async {
            tokio::time::sleep(Duration::from_millis(1500)).await;
        })
        .await;
        assert_eq!(outcome.arrived, 30, "users 0..=29 arrive before 3 s");
        assert_eq!(
            outcome.finished, 25,
            "those arriving before 2.5 s end by 4 s"
        );
        assert_eq!(outcome.cut_off, 5);
        assert_eq!(Instant::now() - started, Duration::from_secs(4));
    }
}
