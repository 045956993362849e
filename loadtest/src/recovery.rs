//! When a system is back after a disturbance (an overload, a fault), from the per-second series
//! of the time after it, defined so that this machine's noise can neither fake nor hide it:
//!
//! - **errors stopped**: the first second that starts [`WINDOW`] seconds without a single error;
//! - **p99 back**: the first second within the threshold ([`threshold`]: twice the baseline, or
//!   5 ms over it, whichever is larger) that starts [`WINDOW`] seconds whose *median* per-second
//!   p99 is within it too. A median of 5 ignores two noisy seconds (one spike cannot hide a
//!   recovery), and a real backlog keeps at least three of them slow (two quiet seconds cannot
//!   fake one).
//!
//! Recovered is when both hold: the later of the two.

use serde::Serialize;

use crate::series::Second;

/// Seconds a recovery must hold.
pub const WINDOW: usize = 5;

/// The p99 that counts as back, for a baseline p99 (per-second p99 of a few thousand
/// requests is noisy on a shared 2-core box).
pub fn threshold(baseline_p99_ms: f64) -> f64 {
    (baseline_p99_ms * 2.0).max(baseline_p99_ms + 5.0)
}

/// Seconds from the disturbance's end (each None: not within the series).
#[derive(Serialize, Debug, Clone, Copy, PartialEq)]
pub struct Recovery {
    pub errors_stopped_after_seconds: Option<u64>,
    pub p99_back_after_seconds: Option<u64>,
    /// The later of the two.
    pub recovered_after_seconds: Option<u64>,
}

/// The recovery in `after` (the seconds from the disturbance's end at `end`, in order), against
/// `threshold_ms`.
pub fn measure(after: &[&Second], end: u64, threshold_ms: f64) -> Recovery {
    let since = |i: usize| after[i].t.saturating_sub(end);
    let windows = || (0..after.len()).map(|i| &after[i..(i + WINDOW).min(after.len())]);
    let errors_stopped = windows()
        .position(|window| window.len() == WINDOW && window.iter().all(|s| s.error_count() == 0))
        .map(since);
    let p99_back = windows()
        .position(|window| {
            window.len() == WINDOW
                && window[0].p99_ms <= threshold_ms
                && median_p99(window) <= threshold_ms
        })
        .map(since);
    Recovery {
        errors_stopped_after_seconds: errors_stopped,
        p99_back_after_seconds: p99_back,
        recovered_after_seconds: errors_stopped.zip(p99_back).map(|(e, p)| e.max(p)),
    }
}

fn median_p99(window: &[&Second]) -> f64 {
    let mut p99s: Vec<f64> = window.iter().map(|s| s.p99_ms).collect();
    p99s.sort_by(f64::total_cmp);
    p99s[p99s.len() / 2]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Seconds from t = 100 on, one per (p99 ms, errors).
    fn series(seconds: &[(f64, u64)]) -> Vec<Second> {
        seconds
            .iter()
            .enumerate()
            .map(|(i, &(p99_ms, errors))| Second {
                t: 100 + i as u64,
                requests: 1000,
                p50_ms: p99_ms / 4.0,
                p95_ms: p99_ms / 2.0,
                p99_ms,
                errors: if errors > 0 {
                    BTreeMap::from([("503_OVERLOADED".to_owned(), errors)])
                } else {
                    BTreeMap::new()
                },
                active_users: 10,
            })
            .collect()
    }

    fn recovery(seconds: &[(f64, u64)]) -> Recovery {
        let series = series(seconds);
        let after: Vec<&Second> = series.iter().collect();
        measure(&after, 100, threshold(5.0))
    }

    #[test]
    fn the_threshold_is_twice_the_baseline_or_5_ms_over_it() {
        assert_eq!(threshold(2.0), 7.0);
        assert_eq!(threshold(20.0), 40.0);
    }

    #[test]
    fn a_clean_return_is_recovered_at_once() {
        let r = recovery(&[(6.0, 0); 8]);
        assert_eq!(r.recovered_after_seconds, Some(0));
    }

    #[test]
    fn one_noisy_second_does_not_hide_a_recovery() {
        // Errors stop after 1 s; p99 back from then on but for one 80 ms spike.
        let r = recovery(&[
            (300.0, 50),
            (6.0, 0),
            (80.0, 0),
            (6.0, 0),
            (6.0, 0),
            (6.0, 0),
            (6.0, 0),
            (6.0, 0),
        ]);
        assert_eq!(r.errors_stopped_after_seconds, Some(1));
        assert_eq!(r.p99_back_after_seconds, Some(1));
        assert_eq!(r.recovered_after_seconds, Some(1));
    }

    #[test]
    fn two_quiet_seconds_in_a_backlog_do_not_fake_a_recovery() {
        // A backlog that drains only at 6 s, with two lucky quiet seconds early on.
        let r = recovery(&[
            (400.0, 0),
            (6.0, 0),
            (6.0, 0),
            (400.0, 0),
            (400.0, 0),
            (400.0, 0),
            (6.0, 0),
            (6.0, 0),
            (6.0, 0),
            (6.0, 0),
            (6.0, 0),
        ]);
        assert_eq!(r.p99_back_after_seconds, Some(6));
    }

    #[test]
    fn errors_that_come_back_are_not_stopped() {
        let r = recovery(&[
            (6.0, 10),
            (6.0, 0),
            (6.0, 0),
            (6.0, 3),
            (6.0, 0),
            (6.0, 0),
            (6.0, 0),
            (6.0, 0),
            (6.0, 0),
        ]);
        assert_eq!(r.errors_stopped_after_seconds, Some(4));
        assert_eq!(r.recovered_after_seconds, Some(4));
    }

    #[test]
    fn no_full_window_is_not_a_recovery() {
        let r = recovery(&[(6.0, 0); 4]);
        assert_eq!(r.recovered_after_seconds, None);
    }
}
