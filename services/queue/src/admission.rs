//! One admission step of one room: how much it may do at most, and what it did.

/// Most tokens one admission step expires, idles out, drops or admits, each (bounds a script's
/// run time).
pub const MAX_BATCH: u64 = 1_000;

/// One admission step's outcome for one room.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Admission {
    pub admitted: u64,
    pub expired: u64,
    pub dropped: u64,
    /// Admitted users who gave their slot back by making no reservation call in time.
    pub idled: u64,
    /// Tokens still waiting after the step.
    pub waiting: u64,
    /// Tokens active after the step.
    pub active: u64,
}

impl Admission {
    /// Whether one of the step's batches came back full, so the same room may have more to do
    /// at once (more to expire or drop, or more to admit than one batch).
    pub fn batch_full(&self) -> bool {
        self.admitted >= MAX_BATCH
            || self.expired >= MAX_BATCH
            || self.dropped >= MAX_BATCH
            || self.idled >= MAX_BATCH
    }

    /// The same room's next step after this one: counts add up; waiting and active become
    /// `next`'s (the later state).
    pub fn followed_by(self, next: Admission) -> Admission {
        Admission {
            admitted: self.admitted + next.admitted,
            expired: self.expired + next.expired,
            dropped: self.dropped + next.dropped,
            idled: self.idled + next.idled,
            waiting: next.waiting,
            active: next.active,
        }
    }

    /// This room's outcome together with another room's: every count adds up.
    pub fn and(self, other: Admission) -> Admission {
        Admission {
            admitted: self.admitted + other.admitted,
            expired: self.expired + other.expired,
            dropped: self.dropped + other.dropped,
            idled: self.idled + other.idled,
            waiting: self.waiting + other.waiting,
            active: self.active + other.active,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_full_when_any_of_its_four_counts_reaches_the_bound() {
        assert!(!Admission::default().batch_full());
        let under = Admission {
            admitted: MAX_BATCH - 1,
            expired: MAX_BATCH - 1,
            dropped: MAX_BATCH - 1,
            idled: MAX_BATCH - 1,
            waiting: 10 * MAX_BATCH,
            active: 10 * MAX_BATCH,
        };
        assert!(!under.batch_full(), "waiting and active do not count");
        for full in [
            Admission {
                admitted: MAX_BATCH,
                ..Admission::default()
            },
            Admission {
                expired: MAX_BATCH,
                ..Admission::default()
            },
            Admission {
                dropped: MAX_BATCH,
                ..Admission::default()
            },
            Admission {
                idled: MAX_BATCH,
                ..Admission::default()
            },
        ] {
            assert!(full.batch_full(), "{full:?}");
        }
    }

    #[test]
    fn a_later_step_adds_its_counts_and_replaces_the_state_while_another_room_adds_both() {
        let first = Admission {
            admitted: 1,
            expired: 2,
            dropped: 3,
            idled: 6,
            waiting: 40,
            active: 50,
        };
        let next = Admission {
            admitted: 10,
            expired: 20,
            dropped: 30,
            idled: 60,
            waiting: 4,
            active: 5,
        };
        assert_eq!(
            first.followed_by(next),
            Admission {
                admitted: 11,
                expired: 22,
                dropped: 33,
                idled: 66,
                waiting: 4,
                active: 5
            }
        );
        assert_eq!(
            first.and(next),
            Admission {
                admitted: 11,
                expired: 22,
                dropped: 33,
                idled: 66,
                waiting: 44,
                active: 55
            }
        );
    }
}
