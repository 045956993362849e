//! Which faults a run injects and when: after a warm-up and a calm stretch, one fault after
//! another, each followed by a calm stretch — the fault's recovery window, whose last seconds
//! are the next fault's baseline — and the run ends after the last one's.

use std::time::Duration;

use serde::Serialize;

/// One fault the run injects.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// The private Redis stopped (SIGSTOP) for the stall's length, then continued (SIGCONT).
    RedisStall,
    /// Every process of the private PostgreSQL cluster stopped, then continued.
    PostgresStall,
    /// The private PostgreSQL cluster restarted: fast shutdown, then start (`pg_ctl restart -m
    /// fast`).
    PostgresRestart,
    /// One reservation replica killed (SIGKILL); its supervisor starts it again.
    ReservationKill,
    /// The queue service restarted: each replica stopped (SIGTERM) in turn, the next once its
    /// supervisor's new process serves.
    QueueRestart,
}

impl Fault {
    /// Every fault, in the order a run injects them by default (issue 14's).
    pub const ALL: [Fault; 5] = [
        Fault::RedisStall,
        Fault::PostgresStall,
        Fault::PostgresRestart,
        Fault::ReservationKill,
        Fault::QueueRestart,
    ];

    /// Its name in arguments and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::RedisStall => "redis-stall",
            Self::PostgresStall => "postgres-stall",
            Self::PostgresRestart => "postgres-restart",
            Self::ReservationKill => "reservation-kill",
            Self::QueueRestart => "queue-restart",
        }
    }

    /// Whether it stops its target for the stall's length.
    pub fn is_stall(self) -> bool {
        matches!(self, Self::RedisStall | Self::PostgresStall)
    }
}

/// How long the run's stretches last.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Timing {
    /// Load before the first calm stretch, judged by nothing (journeys are still filling up).
    pub warmup: Duration,
    /// Each calm stretch: before the first fault, between one fault's end and the next
    /// one's start, and after the last.
    pub calm: Duration,
    /// The last seconds of the calm stretch before a fault: its baseline.
    pub baseline: Duration,
    /// How long a stall stops its target.
    pub stall: Duration,
}

/// One step of the run's schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Load alone for this long.
    Calm(Duration),
    /// Inject this fault and wait until it has ended.
    Inject(Fault),
}

/// The schedule of `faults`: warm-up and calm, then each fault followed by calm.
pub fn steps(faults: &[Fault], timing: &Timing) -> Vec<Step> {
    let mut steps = vec![Step::Calm(timing.warmup + timing.calm)];
    for fault in faults {
        steps.push(Step::Inject(*fault));
        steps.push(Step::Calm(timing.calm));
    }
    steps
}

/// What a fault that is not a stall may take at most, for sizing a run in advance (a restart
/// and its supervisor's backoff take a few seconds).
const RESTART_ALLOWANCE: Duration = Duration::from_secs(15);

/// The schedule's length if every fault took its stall or [`RESTART_ALLOWANCE`].
pub fn planned(faults: &[Fault], timing: &Timing) -> Duration {
    steps(faults, timing)
        .iter()
        .map(|step| match step {
            Step::Calm(seconds) => *seconds,
            Step::Inject(fault) if fault.is_stall() => timing.stall,
            Step::Inject(_) => RESTART_ALLOWANCE,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing() -> Timing {
        Timing {
            warmup: Duration::from_secs(10),
            calm: Duration::from_secs(20),
            baseline: Duration::from_secs(10),
            stall: Duration::from_secs(5),
        }
    }

    #[test]
    fn by_default_the_five_faults_come_in_the_issues_order() {
        let names: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(
            names,
            [
                "redis-stall",
                "postgres-stall",
                "postgres-restart",
                "reservation-kill",
                "queue-restart"
            ]
        );
        // The names are the command line's.
        for fault in Fault::ALL {
            let parsed = <Fault as clap::ValueEnum>::from_str(fault.name(), false);
            assert_eq!(parsed, Ok(fault));
        }
    }

    #[test]
    fn each_fault_comes_after_calm_and_is_followed_by_calm() {
        let seconds = Duration::from_secs;
        assert_eq!(
            steps(&[Fault::RedisStall, Fault::ReservationKill], &timing()),
            [
                Step::Calm(seconds(30)),
                Step::Inject(Fault::RedisStall),
                Step::Calm(seconds(20)),
                Step::Inject(Fault::ReservationKill),
                Step::Calm(seconds(20)),
            ]
        );
        assert_eq!(steps(&[], &timing()), [Step::Calm(seconds(30))]);
    }

    #[test]
    fn a_run_is_planned_with_the_stall_for_stalls_and_an_allowance_for_restarts() {
        // 30 s before the first, 5 s stall + 20 s calm, 15 s allowance + 20 s calm.
        assert_eq!(
            planned(&[Fault::PostgresStall, Fault::QueueRestart], &timing()),
            Duration::from_secs(90)
        );
    }
}
