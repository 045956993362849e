//! The catalog's own types, and the edge conversions from wire requests (`TryFrom`).

use ticketing_proto::catalog::v1 as pb;

use crate::error::CatalogError;

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Concert {
    pub id: i64,
    pub title: String,
    pub artist: String,
    pub description: String,
    /// The shared default waiting room admits to it (else the concert has its own room).
    pub shared_room: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ConcertOption {
    pub id: i64,
    pub concert_id: i64,
    pub starts_at_ms: i64,
    pub venue: String,
    pub sale_opens_at_ms: i64,
    pub seat_count: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Seat {
    pub concert_option_id: i64,
    pub seat_no: i32,
    pub grade: String,
    pub price_minor: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeatMap {
    pub concert_option_id: i64,
    pub sale_opens_at_ms: i64,
    /// The option's concert, and whether the shared default waiting room admits to it.
    pub concert_id: i64,
    pub shared_room: bool,
    pub seats: Vec<Seat>,
}

/// A positive id, or InvalidArgument naming the field.
pub fn positive_id(value: i64, code: &'static str, field: &str) -> Result<i64, CatalogError> {
    if value > 0 {
        Ok(value)
    } else {
        Err(CatalogError::invalid(
            code,
            format!("{field} must be a positive integer"),
        ))
    }
}

impl From<Concert> for pb::Concert {
    fn from(c: Concert) -> Self {
        Self {
            id: c.id,
            title: c.title,
            artist: c.artist,
            description: c.description,
            shared_room: c.shared_room,
        }
    }
}

impl From<ConcertOption> for pb::ConcertOption {
    fn from(o: ConcertOption) -> Self {
        Self {
            id: o.id,
            concert_id: o.concert_id,
            starts_at_unix_ms: o.starts_at_ms,
            venue: o.venue,
            sale_opens_at_unix_ms: o.sale_opens_at_ms,
            seat_count: u32::try_from(o.seat_count).unwrap_or(0),
        }
    }
}

impl From<Seat> for pb::Seat {
    fn from(s: Seat) -> Self {
        Self {
            concert_option_id: s.concert_option_id,
            seat_no: s.seat_no,
            grade: s.grade,
            price_minor: s.price_minor,
        }
    }
}

impl From<SeatMap> for pb::SeatMap {
    fn from(map: SeatMap) -> Self {
        Self {
            concert_option_id: map.concert_option_id,
            sale_opens_at_unix_ms: map.sale_opens_at_ms,
            concert_id: map.concert_id,
            shared_room: map.shared_room,
            seats: map.seats.into_iter().map(Into::into).collect(),
        }
    }
}
