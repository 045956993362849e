//! A room's scheduled opening: the pre-queue's window, the phase a room is in at an instant, and
//! an operator's change to it. The draw itself is in `lua/issue.lua`.

/// What a schedule must satisfy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleRule {
    #[error("a scheduled instant must be a positive unix time in milliseconds")]
    InstantOutOfRange,
    #[error("the pre-queue opens before the room does: prequeueOpensAt must come before opensAt")]
    PrequeueNotBeforeOpening,
    #[error("a pre-queue needs an opening: set opensAt too")]
    PrequeueWithoutOpening,
}

/// Where a room stands with respect to its scheduled opening.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoomPhase {
    /// Admitting as the settings allow (no schedule, or past its opening).
    Open,
    /// Before the pre-queue opens: joining is refused.
    NotOpen,
    /// Pre-queue open: joiners enter the draw at the opening; nobody is admitted.
    Prequeue,
}

/// A room's scheduled opening (unix ms). Joiners between the two instants are placed in
/// uniformly random order at `opens_at_ms`, ahead of everyone who joins later.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    /// Joining is refused before this instant (none: the pre-queue is open until the opening).
    pub prequeue_opens_at_ms: Option<i64>,
    /// When the order is drawn and admission starts (none: not scheduled).
    pub opens_at_ms: Option<i64>,
}

impl Schedule {
    /// Each instant positive, and the pre-queue (if any) before an opening.
    pub fn check(&self) -> Result<(), ScheduleRule> {
        for instant in [self.prequeue_opens_at_ms, self.opens_at_ms]
            .into_iter()
            .flatten()
        {
            if instant <= 0 {
                return Err(ScheduleRule::InstantOutOfRange);
            }
        }
        match (self.prequeue_opens_at_ms, self.opens_at_ms) {
            (Some(_), None) => Err(ScheduleRule::PrequeueWithoutOpening),
            (Some(prequeue), Some(opens)) if prequeue >= opens => {
                Err(ScheduleRule::PrequeueNotBeforeOpening)
            }
            _ => Ok(()),
        }
    }

    /// The phase at `now_ms` (the same rule the scripts apply).
    pub fn phase(&self, now_ms: i64) -> RoomPhase {
        match self.opens_at_ms {
            Some(opens) if now_ms < opens => match self.prequeue_opens_at_ms {
                Some(prequeue) if now_ms < prequeue => RoomPhase::NotOpen,
                _ => RoomPhase::Prequeue,
            },
            _ => RoomPhase::Open,
        }
    }
}

/// A change to a room's schedule: for each instant, `None` leaves it, `Some(None)` clears it,
/// `Some(Some(ms))` sets it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedulePatch {
    pub prequeue_opens_at_ms: Option<Option<i64>>,
    pub opens_at_ms: Option<Option<i64>>,
}

impl SchedulePatch {
    pub fn is_empty(&self) -> bool {
        self.prequeue_opens_at_ms.is_none() && self.opens_at_ms.is_none()
    }

    pub fn applied_to(&self, schedule: Schedule) -> Schedule {
        Schedule {
            prequeue_opens_at_ms: self
                .prequeue_opens_at_ms
                .unwrap_or(schedule.prequeue_opens_at_ms),
            opens_at_ms: self.opens_at_ms.unwrap_or(schedule.opens_at_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_needs_positive_instants_and_a_prequeue_before_its_opening() {
        let schedule = |prequeue_opens_at_ms, opens_at_ms| Schedule {
            prequeue_opens_at_ms,
            opens_at_ms,
        };
        assert_eq!(schedule(None, None).check(), Ok(()));
        assert_eq!(schedule(None, Some(5)).check(), Ok(()));
        assert_eq!(schedule(Some(4), Some(5)).check(), Ok(()));
        assert_eq!(
            schedule(Some(5), Some(5)).check(),
            Err(ScheduleRule::PrequeueNotBeforeOpening)
        );
        assert_eq!(
            schedule(Some(5), None).check(),
            Err(ScheduleRule::PrequeueWithoutOpening)
        );
        assert_eq!(
            schedule(None, Some(0)).check(),
            Err(ScheduleRule::InstantOutOfRange)
        );
    }

    #[test]
    fn the_phase_is_not_open_then_prequeue_then_open() {
        let schedule = Schedule {
            prequeue_opens_at_ms: Some(100),
            opens_at_ms: Some(200),
        };
        assert_eq!(schedule.phase(99), RoomPhase::NotOpen);
        assert_eq!(schedule.phase(100), RoomPhase::Prequeue);
        assert_eq!(schedule.phase(199), RoomPhase::Prequeue);
        assert_eq!(schedule.phase(200), RoomPhase::Open);
        let opening_only = Schedule {
            prequeue_opens_at_ms: None,
            opens_at_ms: Some(200),
        };
        assert_eq!(opening_only.phase(0), RoomPhase::Prequeue);
        assert_eq!(Schedule::default().phase(0), RoomPhase::Open);
    }
}
