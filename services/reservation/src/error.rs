//! The reservation service's errors, and the one mapping to gRPC statuses.

use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum ReservationError {
    #[error("{message}")]
    InvalidArgument { code: &'static str, message: String },
    #[error("the seat is already held or sold")]
    SeatTaken,
    #[error("at most {limit} seats per user for one concert, held or bought")]
    SeatLimitReached { limit: u32 },
    #[error("the queue token is not from this concert's waiting room")]
    TokenWrongRoom,
    #[error("no such seat in this concert option")]
    SeatNotFound,
    #[error("unknown concert option")]
    OptionNotFound,
    #[error("this concert option is not on sale yet")]
    SaleNotOpen,
    #[error("unknown reservation")]
    ReservationNotFound,
    #[error("the reservation belongs to another user")]
    NotYourReservation,
    #[error("the hold has expired")]
    HoldExpired,
    #[error("the reservation is already paid")]
    AlreadyPaid,
    #[error("insufficient balance")]
    InsufficientBalance,
    #[error("the balance would exceed its limit")]
    BalanceLimit,
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyKeyReused,
    #[error("no answer is stored under this Idempotency-Key")]
    NothingToReplay,
    #[error("catalog: {0}")]
    Catalog(Status),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored answer unreadable: {0}")]
    Corrupt(String),
}

impl ReservationError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            code,
            message: message.into(),
        }
    }
}

impl kit::postgres::StoreError for ReservationError {
    fn database(&self) -> Option<&sqlx::Error> {
        match self {
            Self::Database(error) => Some(error),
            _ => None,
        }
    }
}

impl From<ReservationError> for Status {
    fn from(error: ReservationError) -> Self {
        use ReservationError as E;
        let (code, error_code) = match &error {
            E::InvalidArgument { code, .. } => (Code::InvalidArgument, *code),
            E::SeatTaken => (Code::AlreadyExists, "SEAT_TAKEN"),
            E::SeatLimitReached { .. } => (Code::FailedPrecondition, "SEAT_LIMIT_REACHED"),
            E::TokenWrongRoom => (Code::PermissionDenied, "TOKEN_WRONG_ROOM"),
            E::SeatNotFound => (Code::NotFound, "SEAT_NOT_FOUND"),
            E::OptionNotFound => (Code::NotFound, "OPTION_NOT_FOUND"),
            E::SaleNotOpen => (Code::FailedPrecondition, "SALE_NOT_OPEN"),
            E::ReservationNotFound => (Code::NotFound, "RESERVATION_NOT_FOUND"),
            E::NotYourReservation => (Code::PermissionDenied, "NOT_YOUR_RESERVATION"),
            E::HoldExpired => (Code::FailedPrecondition, "HOLD_EXPIRED"),
            E::AlreadyPaid => (Code::FailedPrecondition, "ALREADY_PAID"),
            E::InsufficientBalance => (Code::FailedPrecondition, "INSUFFICIENT_BALANCE"),
            E::BalanceLimit => (Code::InvalidArgument, "BALANCE_LIMIT_EXCEEDED"),
            E::IdempotencyKeyReused => (Code::FailedPrecondition, "IDEMPOTENCY_KEY_REUSED"),
            E::NothingToReplay => (Code::NotFound, "NOTHING_TO_REPLAY"),
            E::Catalog(_) => (Code::Unavailable, "CATALOG_UNAVAILABLE"),
            E::Database(error) if kit::postgres::is_unavailable(error) => {
                (Code::Unavailable, "RESERVATION_STORE_UNAVAILABLE")
            }
            E::Database(_) | E::Corrupt(_) => (Code::Internal, "INTERNAL"),
        };
        if matches!(code, Code::Unavailable | Code::Internal) {
            tracing::error!(%error, "reservation failure");
        }
        kit::error_code::status(code, error_code, error.to_string())
    }
}
