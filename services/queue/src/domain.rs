//! The waiting room's own types. Wire requests become these at the edge (`grpc.rs`), and the
//! store hands back these, so everything past the edge holds valid values only.

use std::{fmt, time::Duration};

use uuid::Uuid;

use crate::error::QueueError;

/// A positive user id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UserId(i64);

impl UserId {
    pub fn new(raw: i64) -> Result<Self, QueueError> {
        if raw > 0 {
            Ok(Self(raw))
        } else {
            Err(QueueError::invalid(
                "INVALID_USER_ID",
                "userId must be a positive integer",
            ))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// A waiting room: one per concert, or the shared default one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Room {
    Default,
    Concert(i64),
}

impl Room {
    /// The room of `concert_id`, or the default room when there is none.
    pub fn new(concert_id: Option<i64>) -> Result<Self, QueueError> {
        match concert_id {
            None => Ok(Self::Default),
            Some(id) if id > 0 => Ok(Self::Concert(id)),
            Some(_) => Err(QueueError::invalid(
                "INVALID_CONCERT_ID",
                "concertId must be a positive integer",
            )),
        }
    }

    pub fn concert_id(self) -> Option<i64> {
        match self {
            Self::Default => None,
            Self::Concert(id) => Some(id),
        }
    }
}

/// A queue token: a random 128-bit UUID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Token(Uuid);

impl Token {
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }

    pub fn parse(raw: &str) -> Result<Self, QueueError> {
        Uuid::parse_str(raw.trim())
            .map(Self)
            .map_err(|_| QueueError::invalid("INVALID_TOKEN", "token must be a UUID"))
    }

    /// A uniform fraction in [0, 1) from the token's random bits: its place in a pre-queue's
    /// draw. The low 62 bits of a v4 UUID are random (the variant takes the two above), and
    /// 53 of them fill a double's mantissa exactly.
    pub fn draw_fraction(&self) -> f64 {
        let bits = self.0.as_u128() & ((1 << 53) - 1);
        // Exact: both are below 2^53.
        bits as f64 / (1u64 << 53) as f64
    }

    /// A duration in [0, `over`) from the token's random bits (other bits than the draw's).
    pub fn spread(&self, over: Duration) -> Duration {
        let bits = (self.0.as_u128() >> 80) & 0xFFFF;
        over.mul_f64(bits as f64 / 65_536.0)
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Where a token stands in its room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenStatus {
    /// In line: 1-based position and the estimated wait; `paused` while an operator has
    /// paused admission in the room (the ETA assumes it resumes).
    Waiting {
        position: u64,
        eta_seconds: u64,
        paused: bool,
    },
    /// Admitted until this instant (unix ms); while no reservation call has come yet, the slot
    /// goes back to the line at `choose_by_unix_ms` unless one does.
    Active {
        until_unix_ms: i64,
        choose_by_unix_ms: Option<i64>,
    },
    /// In the pre-queue of a scheduled room: the order is drawn at the opening, so there is no
    /// position yet.
    Prequeue {
        opens_at_unix_ms: i64,
        /// Milliseconds from now until the opening.
        opens_in_ms: u64,
    },
    /// In line (the place is kept), but no seat of the concert is free: nobody is admitted
    /// until one comes back. `seats_may_return` while some seats are only held.
    SoldOut {
        position: u64,
        seats_may_return: bool,
    },
}

/// A concert's seats: the admitter's view of what is left to sell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoomSeats {
    /// Neither held nor sold.
    pub free: u32,
    /// Held by someone who has not paid (yet); back to free when the hold runs out.
    pub held: u32,
    pub sold: u32,
}

/// A token's place in its room: whose it is, which room, and its status there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueEntry {
    pub token: Token,
    pub user: UserId,
    pub room: Room,
    pub status: TokenStatus,
}

/// A queue entry with the policy's advice on when to poll again: what a caller is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdvisedEntry {
    pub entry: QueueEntry,
    /// Zero for an active token.
    pub poll_after: Duration,
}

/// The outcome of validating a token for a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Valid { until_unix_ms: i64, room: Room },
    NotFound,
    Expired,
    NotAdmitted,
    WrongUser,
}

/// IssueToken, validated.
pub struct IssueToken {
    pub user: UserId,
    pub room: Room,
}

/// ValidateToken, validated.
pub struct ValidateToken {
    pub token: Token,
    pub user: UserId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_must_be_positive() {
        assert!(UserId::new(0).is_err());
        assert!(UserId::new(-5).is_err());
        assert_eq!(UserId::new(i64::MAX).map(UserId::get).ok(), Some(i64::MAX));
    }

    #[test]
    fn a_room_is_a_positive_concert_or_without_one_the_default() {
        assert_eq!(Room::new(None).ok(), Some(Room::Default));
        assert_eq!(Room::new(Some(42)).ok(), Some(Room::Concert(42)));
        assert!(Room::new(Some(0)).is_err());
        assert!(Room::new(Some(-1)).is_err());
        assert_eq!(Room::Concert(42).concert_id(), Some(42));
        assert_eq!(Room::Default.concert_id(), None);
    }

    #[test]
    fn a_tokens_draw_fraction_and_spread_stay_in_range() {
        for _ in 0..1_000 {
            let token = Token::random();
            let fraction = token.draw_fraction();
            assert!((0.0..1.0).contains(&fraction), "{fraction}");
            assert!(token.spread(Duration::from_secs(3)) < Duration::from_secs(3));
        }
        let top = Token::parse("ffffffff-ffff-4fff-bfff-ffffffffffff").unwrap();
        assert!(top.draw_fraction() < 1.0);
    }

    #[test]
    fn tokens_must_be_uuids() {
        assert!(Token::parse("not-a-token").is_err());
        let token = Token::random();
        assert_eq!(Token::parse(&token.to_string()).ok(), Some(token));
    }
}
