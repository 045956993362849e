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
    /// Admitted until this instant (unix ms).
    Active { until_unix_ms: i64 },
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
    fn tokens_must_be_uuids() {
        assert!(Token::parse("not-a-token").is_err());
        let token = Token::random();
        assert_eq!(Token::parse(&token.to_string()).ok(), Some(token));
    }
}
