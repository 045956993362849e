//! The waiting room's own types. Wire requests become these at the edge (`TryFrom`), so
//! everything past the edge holds valid values only.

use std::fmt;

use ticketing_proto::queue::v1 as pb;
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

/// Which waiting room: one per concert, or the shared default one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueueId {
    Default,
    Concert(i64),
}

impl QueueId {
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

    /// The id as stored in Redis keys.
    pub fn key(self) -> String {
        match self {
            Self::Default => "default".to_owned(),
            Self::Concert(id) => id.to_string(),
        }
    }

    /// Parses the key form back; `None` for anything this service did not write.
    pub fn from_key(key: &str) -> Option<Self> {
        match key {
            "default" => Some(Self::Default),
            other => other.parse().ok().filter(|id| *id > 0).map(Self::Concert),
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

/// Where a token stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// In line: 1-based position and the estimated wait.
    Waiting { position: u64, eta_seconds: u64 },
    /// Admitted until this instant (unix ms).
    Active { until_unix_ms: i64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenStatus {
    pub token: Token,
    pub user: UserId,
    pub queue: QueueId,
    pub standing: Standing,
}

/// The outcome of validating a token for a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Valid { until_unix_ms: i64, queue: QueueId },
    NotFound,
    Expired,
    NotAdmitted,
    WrongUser,
}

/// IssueToken, validated.
pub struct IssueToken {
    pub user: UserId,
    pub queue: QueueId,
}

impl TryFrom<pb::IssueTokenRequest> for IssueToken {
    type Error = QueueError;

    fn try_from(request: pb::IssueTokenRequest) -> Result<Self, Self::Error> {
        Ok(Self {
            user: UserId::new(request.user_id)?,
            queue: QueueId::new(request.concert_id)?,
        })
    }
}

/// ValidateToken, validated.
pub struct ValidateToken {
    pub token: Token,
    pub user: UserId,
}

impl TryFrom<pb::ValidateTokenRequest> for ValidateToken {
    type Error = QueueError;

    fn try_from(request: pb::ValidateTokenRequest) -> Result<Self, Self::Error> {
        Ok(Self {
            token: Token::parse(&request.token)?,
            user: UserId::new(request.user_id)?,
        })
    }
}

impl TokenStatus {
    /// On the wire, with the policy's advice on when to poll again.
    pub fn into_wire(self, poll_after: std::time::Duration) -> pb::QueueEntry {
        let (state, position, eta_seconds, active_until_unix_ms) = match self.standing {
            Standing::Waiting {
                position,
                eta_seconds,
            } => (pb::TokenStatus::Waiting, position, eta_seconds, None),
            Standing::Active { until_unix_ms } => {
                (pb::TokenStatus::Active, 0, 0, Some(until_unix_ms))
            }
        };
        pb::QueueEntry {
            token: self.token.to_string(),
            status: state.into(),
            position,
            eta_seconds,
            active_until_unix_ms,
            user_id: self.user.get(),
            concert_id: self.queue.concert_id(),
            poll_after_ms: poll_after.as_millis() as u64,
        }
    }
}

impl From<Verdict> for pb::ValidateTokenResponse {
    fn from(verdict: Verdict) -> Self {
        let (verdict, active_until_unix_ms, concert_id) = match verdict {
            Verdict::Valid {
                until_unix_ms,
                queue,
            } => (
                pb::TokenVerdict::Valid,
                Some(until_unix_ms),
                queue.concert_id(),
            ),
            Verdict::NotFound => (pb::TokenVerdict::NotFound, None, None),
            Verdict::Expired => (pb::TokenVerdict::Expired, None, None),
            Verdict::NotAdmitted => (pb::TokenVerdict::NotAdmitted, None, None),
            Verdict::WrongUser => (pb::TokenVerdict::WrongUser, None, None),
        };
        Self {
            verdict: verdict.into(),
            active_until_unix_ms,
            concert_id,
        }
    }
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
    fn queue_keys_round_trip() {
        for queue in [QueueId::Default, QueueId::Concert(42)] {
            assert_eq!(QueueId::from_key(&queue.key()), Some(queue));
        }
        assert_eq!(QueueId::from_key("-1"), None);
        assert!(QueueId::new(Some(0)).is_err());
    }

    #[test]
    fn tokens_must_be_uuids() {
        assert!(Token::parse("not-a-token").is_err());
        let token = Token::random();
        assert_eq!(Token::parse(&token.to_string()).ok(), Some(token));
    }
}
