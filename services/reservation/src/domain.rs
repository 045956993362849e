//! The reservation service's own types, and the edge conversions from wire requests.

use std::collections::HashMap;

use ticketing_proto::reservation::v1 as pb;

use crate::{concert_options::ConcertOption, error::ReservationError, hold_load::HoldLoadSnapshot};

/// A positive id, or InvalidArgument naming the field.
pub fn positive_id(value: i64, code: &'static str, field: &str) -> Result<i64, ReservationError> {
    if value > 0 {
        Ok(value)
    } else {
        Err(ReservationError::invalid(
            code,
            format!("{field} must be a positive integer"),
        ))
    }
}

/// A client's Idempotency-Key: 1–200 visible ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: Option<String>) -> Result<Option<Self>, ReservationError> {
        match raw {
            None => Ok(None),
            Some(key)
                if !key.is_empty()
                    && key.len() <= 200
                    && key.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                Ok(Some(Self(key)))
            }
            Some(_) => Err(ReservationError::invalid(
                "INVALID_IDEMPOTENCY_KEY",
                "Idempotency-Key must be 1 to 200 visible ASCII characters",
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A waiting room: the shared default room (the original clients', whose tokens carry no
/// concert) or one concert's own room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Room {
    Default,
    Concert(i64),
}

impl Room {
    /// The room that admits to a concert: the default room when the concert says so (its
    /// `shared_room`), else its own.
    pub fn of_concert(concert_id: i64, shared_room: bool) -> Self {
        if shared_room {
            Self::Default
        } else {
            Self::Concert(concert_id)
        }
    }

    /// As stored in a row: the concert of its own room, or null for the default room.
    pub fn concert_id(self) -> Option<i64> {
        match self {
            Self::Default => None,
            Self::Concert(concert_id) => Some(concert_id),
        }
    }

    /// From a stored row (null = the default room).
    pub fn from_concert_id(concert_id: Option<i64>) -> Self {
        concert_id.map_or(Self::Default, Self::Concert)
    }
}

/// The room a request says admitted its caller: required, and a concert's id is positive.
impl TryFrom<Option<pb::Room>> for Room {
    type Error = ReservationError;

    fn try_from(room: Option<pb::Room>) -> Result<Self, Self::Error> {
        match room {
            None => Err(ReservationError::invalid(
                "INVALID_ROOM",
                "admittedBy (the waiting room that admitted the caller) is required",
            )),
            Some(pb::Room { concert_id: None }) => Ok(Self::Default),
            Some(pb::Room {
                concert_id: Some(concert_id),
            }) if concert_id > 0 => Ok(Self::Concert(concert_id)),
            Some(_) => Err(ReservationError::invalid(
                "INVALID_ROOM",
                "admittedBy.concertId must be a positive integer (absent for the default room)",
            )),
        }
    }
}

pub struct HoldSeat {
    pub user_id: i64,
    pub option_id: i64,
    pub seat_no: i32,
    pub idempotency_key: Option<IdempotencyKey>,
    pub admitted_by: Room,
}

impl TryFrom<pb::HoldSeatRequest> for HoldSeat {
    type Error = ReservationError;

    fn try_from(request: pb::HoldSeatRequest) -> Result<Self, Self::Error> {
        if request.seat_no <= 0 {
            return Err(ReservationError::invalid(
                "INVALID_SEAT_ID",
                "seatNo must be a positive integer",
            ));
        }
        Ok(Self {
            user_id: positive_id(request.user_id, "INVALID_USER_ID", "userId")?,
            option_id: positive_id(
                request.concert_option_id,
                "INVALID_CONCERT_OPTION_ID",
                "concertOptionId",
            )?,
            seat_no: request.seat_no,
            idempotency_key: IdempotencyKey::parse(request.idempotency_key)?,
            admitted_by: request.admitted_by.try_into()?,
        })
    }
}

/// What a payment request may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayMode {
    /// Pay, for a caller admitted by this room.
    Admitted(Room),
    /// Only answer from the result stored under the Idempotency-Key (a retry that arrives
    /// after paying released the queue token); nothing is paid.
    ReplayOnly,
}

pub struct Pay {
    pub reservation_id: i64,
    pub user_id: i64,
    pub idempotency_key: Option<IdempotencyKey>,
    pub mode: PayMode,
}

impl TryFrom<pb::PayRequest> for Pay {
    type Error = ReservationError;

    fn try_from(request: pb::PayRequest) -> Result<Self, Self::Error> {
        Ok(Self {
            reservation_id: positive_id(
                request.reservation_id,
                "INVALID_RESERVATION_ID",
                "reservationId",
            )?,
            user_id: positive_id(request.user_id, "INVALID_USER_ID", "userId")?,
            idempotency_key: IdempotencyKey::parse(request.idempotency_key)?,
            mode: if request.replay_only {
                PayMode::ReplayOnly
            } else {
                PayMode::Admitted(request.admitted_by.try_into()?)
            },
        })
    }
}

pub struct Charge {
    pub user_id: i64,
    pub amount_minor: i64,
    pub idempotency_key: Option<IdempotencyKey>,
}

impl Charge {
    pub fn parse(
        request: pb::ChargeWalletRequest,
        max_charge_minor: i64,
    ) -> Result<Self, ReservationError> {
        if request.amount_minor <= 0 {
            return Err(ReservationError::invalid(
                "INVALID_AMOUNT",
                "amount must be a positive integer",
            ));
        }
        if request.amount_minor > max_charge_minor {
            return Err(ReservationError::invalid(
                "AMOUNT_TOO_LARGE",
                format!("amount must be at most {max_charge_minor}"),
            ));
        }
        Ok(Self {
            user_id: positive_id(request.user_id, "INVALID_USER_ID", "userId")?,
            amount_minor: request.amount_minor,
            idempotency_key: IdempotencyKey::parse(request.idempotency_key)?,
        })
    }
}

/// Most concerts one GetOutlook may ask about (the queue asks for the rooms of one tick).
pub const MAX_CONCERTS_PER_OUTLOOK: usize = 1_024;

/// The concerts a GetOutlook asks about: each positive, at most
/// [`MAX_CONCERTS_PER_OUTLOOK`], each once (a repeated id is answered once).
#[derive(Debug, PartialEq, Eq)]
pub struct OutlookQuery {
    pub concert_ids: Vec<i64>,
}

impl TryFrom<pb::GetOutlookRequest> for OutlookQuery {
    type Error = ReservationError;

    fn try_from(request: pb::GetOutlookRequest) -> Result<Self, Self::Error> {
        let mut concert_ids = request.concert_ids;
        if concert_ids.len() > MAX_CONCERTS_PER_OUTLOOK {
            return Err(ReservationError::invalid(
                "TOO_MANY_CONCERTS",
                format!("at most {MAX_CONCERTS_PER_OUTLOOK} concerts per call"),
            ));
        }
        for id in &concert_ids {
            positive_id(*id, "INVALID_CONCERT_ID", "concertIds")?;
        }
        concert_ids.sort_unstable();
        concert_ids.dedup();
        Ok(Self { concert_ids })
    }
}

/// One concert's seats over all its options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeatCounts {
    /// Neither held (unexpired) nor sold.
    pub free: u32,
    pub held: u32,
    pub sold: u32,
}

impl SeatCounts {
    /// A concert's counts from its options and the (option, held, sold) counts of the store,
    /// which lists only options with a held or sold seat. Each option's free seats saturate at
    /// zero on their own, so one option's excess cannot hide another's free seats.
    pub fn of_concert(options: &[ConcertOption], claims: &HashMap<i64, (i64, i64)>) -> SeatCounts {
        let count = |n: i64| u32::try_from(n.max(0)).unwrap_or(u32::MAX);
        options.iter().fold(SeatCounts::default(), |total, option| {
            let (held, sold) = claims.get(&option.id).copied().unwrap_or((0, 0));
            let (held, sold) = (count(held), count(sold));
            SeatCounts {
                free: total
                    .free
                    .saturating_add(option.seat_count.saturating_sub(held).saturating_sub(sold)),
                held: total.held.saturating_add(held),
                sold: total.sold.saturating_add(sold),
            }
        })
    }
}

/// What the queue's admitter paces admission by.
#[derive(Clone, Debug, PartialEq)]
pub struct Outlook {
    /// Per concert the catalog knows (an unknown one is absent).
    pub seats: HashMap<i64, SeatCounts>,
    pub holds: HoldLoadSnapshot,
}

impl From<Outlook> for pb::Outlook {
    fn from(outlook: Outlook) -> Self {
        let holds = outlook.holds;
        Self {
            seats: outlook
                .seats
                .into_iter()
                .map(|(concert_id, seats)| {
                    let seats = pb::SeatCounts {
                        free: seats.free,
                        held: seats.held,
                        sold: seats.sold,
                    };
                    (concert_id, seats)
                })
                .collect(),
            holds: Some(pb::HoldLoad {
                in_flight: holds.in_flight,
                latency_ms: holds.mean_latency.as_secs_f64() * 1_000.0,
                completed: holds.completed,
                window_ms: u32::try_from(holds.window.as_millis()).unwrap_or(u32::MAX),
            }),
        }
    }
}

/// A reservation's status, as its `status` column spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, sqlx::Type, serde::Serialize, serde::Deserialize)]
#[sqlx(type_name = "text", rename_all = "UPPERCASE")]
#[serde(rename_all = "UPPERCASE")]
pub enum ReservationStatus {
    /// The seat is the user's until the hold's deadline.
    Held,
    /// Paid for: the seat is sold.
    Confirmed,
    /// The hold ran out unpaid.
    Expired,
    Cancelled,
}

/// A user's claim on one seat. Its serde form is how an idempotent hold's answer is stored
/// (`store::idempotency`): renaming a field changes the stored format.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct Reservation {
    pub id: i64,
    pub user_id: i64,
    pub concert_option_id: i64,
    pub seat_no: i32,
    /// The effective status: a HELD row past its deadline reads as EXPIRED.
    pub status: ReservationStatus,
    pub price_minor: i64,
    pub grade: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

/// A held seat paid for. Its serde form is how an idempotent payment's answer is stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Payment {
    pub id: i64,
    pub reservation_id: i64,
    pub user_id: i64,
    pub amount_minor: i64,
    pub paid_at_ms: i64,
    /// The payer's balance right after this payment.
    pub balance_after_minor: i64,
}

/// A user's balance. Its serde form is how an idempotent charge's answer is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Wallet {
    pub user_id: i64,
    pub balance_minor: i64,
}

impl From<ReservationStatus> for pb::ReservationStatus {
    fn from(status: ReservationStatus) -> Self {
        match status {
            ReservationStatus::Held => Self::Held,
            ReservationStatus::Confirmed => Self::Confirmed,
            ReservationStatus::Expired => Self::Expired,
            ReservationStatus::Cancelled => Self::Cancelled,
        }
    }
}

impl From<Reservation> for pb::Reservation {
    fn from(r: Reservation) -> Self {
        Self {
            id: r.id,
            user_id: r.user_id,
            concert_option_id: r.concert_option_id,
            seat_no: r.seat_no,
            status: pb::ReservationStatus::from(r.status).into(),
            price_minor: r.price_minor,
            grade: r.grade,
            created_at_unix_ms: r.created_at_ms,
            expires_at_unix_ms: r.expires_at_ms,
        }
    }
}

impl From<Payment> for pb::Payment {
    fn from(p: Payment) -> Self {
        Self {
            id: p.id,
            reservation_id: p.reservation_id,
            user_id: p.user_id,
            amount_minor: p.amount_minor,
            paid_at_unix_ms: p.paid_at_ms,
            balance_after_minor: p.balance_after_minor,
        }
    }
}

impl From<Wallet> for pb::Wallet {
    fn from(w: Wallet) -> Self {
        Self {
            user_id: w.user_id,
            balance_minor: w.balance_minor,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed expectation is the test failing
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_bounded_visible_ascii() {
        assert!(IdempotencyKey::parse(Some("abc-123".into())).is_ok());
        assert!(IdempotencyKey::parse(None).is_ok_and(|k| k.is_none()));
        assert!(IdempotencyKey::parse(Some(String::new())).is_err());
        assert!(IdempotencyKey::parse(Some("has space".into())).is_err());
        assert!(IdempotencyKey::parse(Some("k".repeat(201))).is_err());
    }

    fn code(error: ReservationError) -> &'static str {
        match error {
            ReservationError::InvalidArgument { code, .. } => code,
            other => panic!("not an invalid argument: {other:?}"),
        }
    }

    #[test]
    fn the_admitting_room_is_required_and_its_concert_positive() {
        let room = |concert_id| Some(pb::Room { concert_id });
        assert_eq!(Room::try_from(room(None)).ok(), Some(Room::Default));
        assert_eq!(Room::try_from(room(Some(7))).ok(), Some(Room::Concert(7)));
        for bad in [None, room(Some(0)), room(Some(-3))] {
            assert_eq!(code(Room::try_from(bad).unwrap_err()), "INVALID_ROOM");
        }
    }

    #[test]
    fn a_concert_is_admitted_by_the_default_room_or_its_own() {
        assert_eq!(Room::of_concert(5, true), Room::Default);
        assert_eq!(Room::of_concert(5, false), Room::Concert(5));
        for room in [Room::Default, Room::Concert(5)] {
            assert_eq!(Room::from_concert_id(room.concert_id()), room);
        }
    }

    #[test]
    fn a_payment_needs_its_room_unless_it_only_replays() {
        let request = |replay_only, admitted_by| pb::PayRequest {
            reservation_id: 1,
            user_id: 2,
            idempotency_key: Some("k".into()),
            replay_only,
            admitted_by,
        };
        let shared = Some(pb::Room { concert_id: None });
        assert_eq!(
            Pay::try_from(request(false, shared)).map(|p| p.mode).ok(),
            Some(PayMode::Admitted(Room::Default))
        );
        assert_eq!(
            code(Pay::try_from(request(false, None)).err().unwrap()),
            "INVALID_ROOM"
        );
        assert_eq!(
            Pay::try_from(request(true, None)).map(|p| p.mode).ok(),
            Some(PayMode::ReplayOnly)
        );
    }

    #[test]
    fn a_hold_needs_its_room() {
        let request = pb::HoldSeatRequest {
            user_id: 1,
            concert_option_id: 2,
            seat_no: 3,
            idempotency_key: None,
            admitted_by: None,
        };
        assert_eq!(
            code(HoldSeat::try_from(request).err().unwrap()),
            "INVALID_ROOM"
        );
    }

    #[test]
    fn a_hold_needs_a_positive_seat_no() {
        for seat_no in [0, -1] {
            let request = pb::HoldSeatRequest {
                user_id: 1,
                concert_option_id: 2,
                seat_no,
                idempotency_key: None,
                admitted_by: Some(pb::Room { concert_id: None }),
            };
            // The wire code keeps the original clients' name for a seat's number.
            assert_eq!(
                code(HoldSeat::try_from(request).err().unwrap()),
                "INVALID_SEAT_ID"
            );
        }
    }

    #[test]
    fn an_outlook_asks_about_at_most_1024_positive_concerts_each_once() {
        let query =
            |concert_ids: Vec<i64>| OutlookQuery::try_from(pb::GetOutlookRequest { concert_ids });
        assert_eq!(query(vec![3, 1, 3, 2]).unwrap().concert_ids, vec![1, 2, 3]);
        assert!(query(vec![]).unwrap().concert_ids.is_empty());
        assert!(query(vec![7; MAX_CONCERTS_PER_OUTLOOK]).is_ok());
        assert_eq!(
            code(query(vec![7; MAX_CONCERTS_PER_OUTLOOK + 1]).unwrap_err()),
            "TOO_MANY_CONCERTS"
        );
        for bad in [0, -4] {
            assert_eq!(code(query(vec![1, bad]).unwrap_err()), "INVALID_CONCERT_ID");
        }
    }

    #[test]
    fn free_seats_are_each_options_seats_less_its_claims_saturating_at_zero() {
        let options = [
            ConcertOption {
                id: 1,
                seat_count: 10,
            },
            ConcertOption {
                id: 2,
                seat_count: 5,
            },
            ConcertOption {
                id: 3,
                seat_count: 2,
            },
        ];
        // Option 2 has none held or sold (absent); option 3 more claims than seats.
        let claims = HashMap::from([(1, (3, 2)), (3, (1, 4))]);
        assert_eq!(
            SeatCounts::of_concert(&options, &claims),
            SeatCounts {
                free: 5 + 5,
                held: 4,
                sold: 6
            }
        );
        assert_eq!(SeatCounts::of_concert(&[], &claims), SeatCounts::default());
    }

    #[test]
    fn charges_are_positive_and_bounded() {
        let request = |amount| pb::ChargeWalletRequest {
            user_id: 1,
            amount_minor: amount,
            idempotency_key: None,
        };
        assert!(Charge::parse(request(1), 100).is_ok());
        assert!(Charge::parse(request(100), 100).is_ok());
        assert!(Charge::parse(request(0), 100).is_err());
        assert!(Charge::parse(request(-5), 100).is_err());
        assert!(Charge::parse(request(101), 100).is_err());
    }
}
