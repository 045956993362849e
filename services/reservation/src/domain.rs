//! The reservation service's own types, and the edge conversions from wire requests.

use ticketing_proto::reservation::v1 as pb;

use crate::error::ReservationError;

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

pub struct HoldSeat {
    pub user_id: i64,
    pub option_id: i64,
    pub seat_no: i32,
    pub idempotency_key: Option<IdempotencyKey>,
}

impl TryFrom<pb::HoldSeatRequest> for HoldSeat {
    type Error = ReservationError;

    fn try_from(request: pb::HoldSeatRequest) -> Result<Self, Self::Error> {
        if request.seat_id <= 0 {
            return Err(ReservationError::invalid(
                "INVALID_SEAT_ID",
                "seatId must be a positive integer",
            ));
        }
        Ok(Self {
            user_id: positive_id(request.user_id, "INVALID_USER_ID", "userId")?,
            option_id: positive_id(
                request.concert_option_id,
                "INVALID_CONCERT_OPTION_ID",
                "concertOptionId",
            )?,
            seat_no: request.seat_id,
            idempotency_key: IdempotencyKey::parse(request.idempotency_key)?,
        })
    }
}

pub struct Pay {
    pub reservation_id: i64,
    pub user_id: i64,
    pub idempotency_key: Option<IdempotencyKey>,
    pub replay_only: bool,
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
            replay_only: request.replay_only,
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

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Reservation {
    pub id: i64,
    pub user_id: i64,
    pub concert_option_id: i64,
    pub seat_no: i32,
    /// The effective status: a HELD row past its deadline reads as EXPIRED.
    pub status: String,
    pub price_minor: i64,
    pub grade: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

impl From<Reservation> for pb::Reservation {
    fn from(r: Reservation) -> Self {
        let status = match r.status.as_str() {
            "HELD" => pb::ReservationStatus::Held,
            "CONFIRMED" => pb::ReservationStatus::Confirmed,
            "EXPIRED" => pb::ReservationStatus::Expired,
            "CANCELLED" => pb::ReservationStatus::Cancelled,
            _ => pb::ReservationStatus::Unspecified,
        };
        Self {
            id: r.id,
            user_id: r.user_id,
            concert_option_id: r.concert_option_id,
            seat_id: r.seat_no,
            status: status.into(),
            price_minor: r.price_minor,
            grade: r.grade,
            created_at_unix_ms: r.created_at_ms,
            expires_at_unix_ms: r.expires_at_ms,
        }
    }
}

#[cfg(test)]
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
