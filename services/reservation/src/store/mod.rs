//! The reservation database: one module per aggregate. Every invariant is enforced by a
//! statement or a transaction here, never by a read-then-write in the application.

pub mod holds;
pub mod idempotency;
pub mod leases;
pub mod payments;
pub mod wallets;

/// Epoch milliseconds of a timestamptz expression, as every query returns instants.
macro_rules! epoch_ms {
    ($column:literal) => {
        concat!("(extract(epoch from ", $column, ") * 1000)::bigint")
    };
}

/// The columns of a `Reservation`, with the effective status (a HELD row past its deadline
/// reads as EXPIRED at once, before the sweeper marks it).
macro_rules! reservation_columns {
    () => {
        concat!(
            "id, user_id, concert_option_id, seat_no, ",
            "case when status = 'HELD' and expires_at <= now() then 'EXPIRED' else status end as status, ",
            "price_minor, grade, ",
            $crate::store::epoch_ms!("created_at"),
            " as created_at_ms, ",
            $crate::store::epoch_ms!("expires_at"),
            " as expires_at_ms"
        )
    };
}

pub(crate) use epoch_ms;
pub(crate) use reservation_columns;
