//! How fast the admitter lets people in. A room's configured rate (or, with a cap only, its cap)
//! is the ceiling; the admitter applies a share of it, lowered while the reservation service
//! struggles with holds (slow, or too many in flight, or not answering) and raised again when
//! it copes: multiplicative decrease, additive increase, so a struggling service is relieved
//! at once and a recovered one gets its traffic back within seconds.

use std::time::Duration;

/// The lowest share of the ceiling the admitter goes down to: a trickle keeps admitting, so
/// the holds it brings show when the service copes again.
pub const MIN_SHARE: f64 = 0.1;
/// While struggling, the share halves every this long.
const HALVING: Duration = Duration::from_secs(1);
/// While coping, the share climbs by this much per second (from the floor to the ceiling in
/// under four seconds).
const CLIMB_PER_SECOND: f64 = 0.25;
/// Longer gaps between observations count as this long (a stalled admitter does not jump).
const MAX_STEP: Duration = Duration::from_secs(1);

/// What holds a room's outflow below its ceiling, if anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutflowLimit {
    /// At the ceiling.
    None,
    Paused,
    NotOpen,
    /// No seat of the concert is free.
    SoldOut,
    HoldLatency,
    HoldsInFlight,
    ReservationUnreachable,
    /// Coping again: climbing back to the ceiling.
    Recovering,
}

impl OutflowLimit {
    const ALL: [Self; 8] = [
        Self::None,
        Self::Paused,
        Self::NotOpen,
        Self::SoldOut,
        Self::HoldLatency,
        Self::HoldsInFlight,
        Self::ReservationUnreachable,
        Self::Recovering,
    ];

    /// How the scripts write it (`lua/common.lua`).
    pub fn code(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Paused => "paused",
            Self::NotOpen => "not-open",
            Self::SoldOut => "sold-out",
            Self::HoldLatency => "hold-latency",
            Self::HoldsInFlight => "holds-in-flight",
            Self::ReservationUnreachable => "reservation-unreachable",
            Self::Recovering => "recovering",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|limit| limit.code() == code)
    }
}

/// The pace one admission step applies: a share of the room's ceiling, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Pace {
    /// In [MIN_SHARE, 1].
    pub share: f64,
    pub limit: OutflowLimit,
    /// One line for the operator; empty at the ceiling.
    pub detail: String,
}

impl Default for Pace {
    fn default() -> Self {
        Self::ceiling()
    }
}

impl Pace {
    /// The full configured rate: nothing known holds it back.
    pub fn ceiling() -> Self {
        Self {
            share: 1.0,
            limit: OutflowLimit::None,
            detail: String::new(),
        }
    }
}

/// What the admitter applied at a room's last step, as the console shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct InEffect {
    pub admission_rate: f64,
    pub active_cap: u32,
    pub limit: OutflowLimit,
    pub detail: String,
}

/// The reservation service's holds, as it reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HoldLoad {
    pub in_flight: u32,
    /// Mean latency of the holds completed in its recent window.
    pub latency_ms: f64,
    pub completed: u32,
}

/// What counts as struggling.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Targets {
    pub hold_latency: Duration,
    pub holds_in_flight: u32,
}

/// The share of the ceiling, adjusted at each observation of the reservation service.
#[derive(Clone, Debug)]
pub struct Outflow {
    share: f64,
    targets: Targets,
}

impl Outflow {
    pub fn new(targets: Targets) -> Self {
        Self {
            share: 1.0,
            targets,
        }
    }

    /// The pace as last set, without a new observation (its detail left out).
    pub fn current(&self) -> Pace {
        Pace {
            share: self.share,
            limit: if self.share < 1.0 {
                OutflowLimit::Recovering
            } else {
                OutflowLimit::None
            },
            detail: String::new(),
        }
    }

    /// The pace after observing `load` (`None`: the service did not answer) `elapsed` after
    /// the previous observation.
    pub fn observe(&mut self, load: Option<&HoldLoad>, elapsed: Duration) -> Pace {
        let step = elapsed.min(MAX_STEP).as_secs_f64();
        let target_ms = self.targets.hold_latency.as_secs_f64() * 1000.0;
        let struggling = match load {
            None => Some((
                OutflowLimit::ReservationUnreachable,
                "the reservation service did not answer".to_owned(),
            )),
            Some(load) if load.completed > 0 && load.latency_ms > target_ms => Some((
                OutflowLimit::HoldLatency,
                format!(
                    "hold latency {:.0} ms over the {target_ms:.0} ms target",
                    load.latency_ms
                ),
            )),
            Some(load) if load.in_flight > self.targets.holds_in_flight => Some((
                OutflowLimit::HoldsInFlight,
                format!(
                    "{} holds in flight over the target of {}",
                    load.in_flight, self.targets.holds_in_flight
                ),
            )),
            Some(_) => None,
        };
        let (limit, detail) = match struggling {
            Some((limit, why)) => {
                let halvings = step / HALVING.as_secs_f64();
                self.share = (self.share * 0.5f64.powf(halvings)).max(MIN_SHARE);
                (
                    limit,
                    format!("{why}: {:.0}% of the ceiling", self.share * 100.0),
                )
            }
            None => {
                self.share = (self.share + CLIMB_PER_SECOND * step).min(1.0);
                if self.share < 1.0 {
                    (
                        OutflowLimit::Recovering,
                        format!(
                            "holds are fast again: {:.0}% of the ceiling, climbing",
                            self.share * 100.0
                        ),
                    )
                } else {
                    (OutflowLimit::None, String::new())
                }
            }
        };
        Pace {
            share: self.share,
            limit,
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outflow() -> Outflow {
        Outflow::new(Targets {
            hold_latency: Duration::from_millis(250),
            holds_in_flight: 64,
        })
    }

    fn load(in_flight: u32, latency_ms: f64) -> HoldLoad {
        HoldLoad {
            in_flight,
            latency_ms,
            completed: 10,
        }
    }

    const TICK: Duration = Duration::from_millis(100);

    #[test]
    fn a_healthy_service_keeps_the_ceiling() {
        let mut outflow = outflow();
        for _ in 0..50 {
            assert_eq!(outflow.observe(Some(&load(3, 20.0)), TICK), Pace::ceiling());
        }
    }

    #[test]
    fn slow_holds_halve_the_share_each_second_down_to_the_floor_and_say_why() {
        let mut outflow = outflow();
        let mut pace = Pace::ceiling();
        for _ in 0..10 {
            pace = outflow.observe(Some(&load(3, 400.0)), TICK);
        }
        assert!((pace.share - 0.5).abs() < 1e-9, "{pace:?}");
        assert_eq!(pace.limit, OutflowLimit::HoldLatency);
        assert_eq!(
            pace.detail,
            "hold latency 400 ms over the 250 ms target: 50% of the ceiling"
        );
        for _ in 0..100 {
            pace = outflow.observe(Some(&load(3, 400.0)), TICK);
        }
        assert_eq!(pace.share, MIN_SHARE);
    }

    #[test]
    fn too_many_holds_in_flight_or_no_answer_lower_the_share_too() {
        let mut outflow = outflow();
        let pace = outflow.observe(Some(&load(65, 10.0)), Duration::from_secs(1));
        assert_eq!((pace.share, pace.limit), (0.5, OutflowLimit::HoldsInFlight));
        let pace = outflow.observe(None, Duration::from_secs(1));
        assert_eq!(
            (pace.share, pace.limit),
            (0.25, OutflowLimit::ReservationUnreachable)
        );
    }

    #[test]
    fn latency_without_completed_holds_is_no_evidence() {
        let mut outflow = outflow();
        let idle = HoldLoad {
            in_flight: 0,
            latency_ms: 900.0,
            completed: 0,
        };
        assert_eq!(outflow.observe(Some(&idle), TICK), Pace::ceiling());
    }

    #[test]
    fn a_recovered_service_climbs_back_to_the_ceiling_within_four_seconds() {
        let mut outflow = outflow();
        for _ in 0..10 {
            outflow.observe(None, Duration::from_secs(1));
        }
        let pace = outflow.observe(Some(&load(1, 10.0)), Duration::from_secs(1));
        assert_eq!(pace.limit, OutflowLimit::Recovering);
        assert!((pace.share - 0.35).abs() < 1e-9, "{pace:?}");
        let mut seconds = 1;
        while outflow.observe(Some(&load(1, 10.0)), Duration::from_secs(1)) != Pace::ceiling() {
            seconds += 1;
        }
        assert!(seconds <= 4, "{seconds} s");
    }

    #[test]
    fn a_long_gap_counts_as_one_second() {
        let mut outflow = outflow();
        let pace = outflow.observe(None, Duration::from_secs(60));
        assert_eq!(pace.share, 0.5);
    }

    #[test]
    fn limits_round_trip_through_their_codes() {
        for limit in OutflowLimit::ALL {
            assert_eq!(OutflowLimit::from_code(limit.code()), Some(limit));
        }
        assert_eq!(OutflowLimit::from_code("fast"), None);
    }
}
