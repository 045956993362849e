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

/// A queue token: a UUID (version 8, RFC 9562) that carries its room, so that every call on
/// it reaches the room's keys (one hash slot of a Redis Cluster) without another look-up. The
/// 122 bits a version-8 UUID leaves free hold, from the top: the bit length `L` of the room's
/// number (6 bits; 0 is the default room, else the concert id), the number's `L` bits, and
/// random bits for the rest: 116 for the default room, 116 - L for a concert (106 for concert
/// 1,000, 84 for one past 2^32). The string stays a UUID, so clients and the HTTP contract see
/// no change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Token(Uuid);

/// Bits a version-8 UUID leaves free.
const FREE_BITS: u32 = 122;
/// Bits that say how long the room's number is.
const LENGTH_BITS: u32 = 6;

impl Token {
    /// A new token for `room`.
    pub fn random(room: Room) -> Self {
        let number = match room {
            Room::Default => 0,
            Room::Concert(id) => id.unsigned_abs(),
        };
        let length = u64::BITS - number.leading_zeros();
        let random_bits = FREE_BITS - LENGTH_BITS - length;
        let random = Uuid::new_v4().as_u128() & ((1 << random_bits) - 1);
        let payload = (u128::from(length) << (FREE_BITS - LENGTH_BITS))
            | (u128::from(number) << random_bits)
            | random;
        Self(Uuid::from_u128(spread_free_bits(payload)))
    }

    /// Any UUID; one this service did not issue has no room (see [`Token::room`]).
    pub fn parse(raw: &str) -> Result<Self, QueueError> {
        Uuid::parse_str(raw.trim())
            .map(Self)
            .map_err(|_| QueueError::invalid("INVALID_TOKEN", "token must be a UUID"))
    }

    /// The room the token was issued in; `None` for a UUID this service could not have issued
    /// (another version, or a room number written in more bits than it needs).
    pub fn room(&self) -> Option<Room> {
        let bits = self.0.as_u128();
        if (bits >> 76) & 0xF != 8 || (bits >> 62) & 0b11 != 0b10 {
            return None;
        }
        let payload = free_bits(bits);
        let length = u32::try_from(payload >> (FREE_BITS - LENGTH_BITS)).ok()?;
        if length == 0 {
            return Some(Room::Default);
        }
        if length >= u64::BITS {
            return None;
        }
        let number = (payload >> (FREE_BITS - LENGTH_BITS - length)) & ((1 << length) - 1);
        let id = i64::try_from(number).ok()?;
        // The top bit of the number is set: one spelling per room.
        (id >> (length - 1) == 1).then_some(Room::Concert(id))
    }

    /// A duration in [0, `over`) from the token's lowest random bits.
    pub fn spread(&self, over: Duration) -> Duration {
        let bits = self.0.as_u128() & 0xFFFF;
        over.mul_f64(bits as f64 / 65_536.0)
    }
}

/// The 122 free bits (top first) in their places around a version-8 UUID's version (bits
/// 79..76) and variant (bits 63..62).
fn spread_free_bits(payload: u128) -> u128 {
    let top = (payload >> 74) << 80;
    let middle = ((payload >> 62) & 0xFFF) << 64;
    let low = payload & ((1 << 62) - 1);
    top | (0x8 << 76) | middle | (0b10 << 62) | low
}

/// The inverse of [`spread_free_bits`].
fn free_bits(bits: u128) -> u128 {
    ((bits >> 80) << 74) | (((bits >> 64) & 0xFFF) << 62) | (bits & ((1 << 62) - 1))
}

/// A uniform fraction in [0, 1): a pre-queue joiner's place in the draw. Drawn apart from the
/// token, so nothing a joiner is told (the token, the poll advice) says anything about it.
pub fn draw_fraction() -> f64 {
    // 53 random bits fill a double's mantissa exactly.
    let bits = Uuid::new_v4().as_u128() & ((1 << 53) - 1);
    bits as f64 / (1u64 << 53) as f64
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
    fn the_draw_fraction_and_a_tokens_spread_stay_in_range() {
        for _ in 0..1_000 {
            let fraction = draw_fraction();
            assert!((0.0..1.0).contains(&fraction), "{fraction}");
            let token = Token::random(Room::Default);
            assert!(token.spread(Duration::from_secs(3)) < Duration::from_secs(3));
        }
    }

    #[test]
    fn tokens_must_be_uuids() {
        assert!(Token::parse("not-a-token").is_err());
        let token = Token::random(Room::Default);
        assert_eq!(Token::parse(&token.to_string()).ok(), Some(token));
    }

    #[test]
    fn a_token_carries_its_room_in_a_version_8_uuid() {
        let rooms = [
            Room::Default,
            Room::Concert(1),
            Room::Concert(2),
            Room::Concert(1_000),
            Room::Concert(1 << 32),
            Room::Concert(i64::MAX),
        ];
        for room in rooms {
            for _ in 0..100 {
                let token = Token::random(room);
                let text = token.to_string();
                assert_eq!(text.len(), 36, "{text}");
                assert_eq!(&text[14..15], "8", "version 8: {text}");
                assert!("89ab".contains(&text[19..20]), "RFC variant: {text}");
                let parsed = Token::parse(&text).unwrap();
                assert_eq!(parsed.room(), Some(room), "{text}");
            }
        }
    }

    #[test]
    fn tokens_of_one_room_differ_in_their_random_bits() {
        for room in [Room::Default, Room::Concert(1_000), Room::Concert(i64::MAX)] {
            let tokens: std::collections::HashSet<Token> =
                (0..10_000).map(|_| Token::random(room)).collect();
            assert_eq!(tokens.len(), 10_000, "{room:?}");
        }
        // The default room keeps 116 random bits: the lowest 64 alone vary.
        let low: std::collections::HashSet<u64> = (0..1_000)
            .map(|_| Token::random(Room::Default).0.as_u128() as u64)
            .collect();
        assert_eq!(low.len(), 1_000);
    }

    #[test]
    fn a_uuid_this_service_did_not_issue_has_no_room() {
        // A version-4 UUID (what tokens were before rooms rode in them), another version, the
        // wrong variant, and a room number spelled with a leading zero bit.
        for foreign in [
            "90c5b8bb-e54a-42fc-9d87-4701a24eefe0",
            "90c5b8bb-e54a-72fc-9d87-4701a24eefe0",
            "00000000-0000-8000-0000-000000000000",
        ] {
            assert_eq!(Token::parse(foreign).unwrap().room(), None, "{foreign}");
        }
        let concert_1 = Token::random(Room::Concert(1)).0.as_u128();
        let length_2 = (concert_1 & !(0x3F << 122)) | (2 << 122);
        let zero_top_bit = length_2 & !(1 << 121);
        assert_eq!(Token(Uuid::from_u128(zero_top_bit)).room(), None);
        assert_eq!(Token(Uuid::from_u128(0)).room(), None);
    }
}
