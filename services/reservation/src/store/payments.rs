//! Paying for a held seat: one transaction, all or nothing.

use sqlx::PgConnection;

use crate::{
    domain::{Payment, ReservationStatus, Room},
    error::ReservationError,
    store::{epoch_ms, wallets},
};

/// What paying needs of the reservation, read under its row lock.
#[derive(sqlx::FromRow)]
struct Locked {
    user_id: i64,
    concert_option_id: i64,
    seat_no: i32,
    /// As stored: a HELD row past its deadline is still HELD here (see `live`).
    status: ReservationStatus,
    price_minor: i64,
    live: bool,
    /// The room that admitted the hold (null = the default room).
    waiting_room_concert_id: Option<i64>,
}

/// Within the caller's transaction: the hold must still be live and the user's, the caller
/// admitted by the room that admitted the hold (`TokenWrongRoom` otherwise), the balance
/// must cover the price (conditional debit, never negative); then the seat is sold for good
/// (its claim loses its deadline), the reservation CONFIRMED and the payment recorded.
pub async fn pay(
    tx: &mut PgConnection,
    reservation_id: i64,
    user_id: i64,
    admitted_by: Room,
) -> Result<Payment, ReservationError> {
    kit::trace::client("pay", kit::trace::db::POSTGRES, async move {
    // Lock the reservation so concurrent payments of it serialise here.
    let row: Option<Locked> = sqlx::query_as(
        "select user_id, concert_option_id, seat_no, status, price_minor, expires_at > now() as live, \
                waiting_room_concert_id \
         from reservations where id = $1 for update",
    )
    .bind(reservation_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Locked {
        user_id: owner,
        concert_option_id: option_id,
        seat_no,
        status,
        price_minor,
        live,
        waiting_room_concert_id,
    } = row.ok_or(ReservationError::ReservationNotFound)?;
    if owner != user_id {
        return Err(ReservationError::NotYourReservation);
    }
    if Room::from_concert_id(waiting_room_concert_id) != admitted_by {
        return Err(ReservationError::TokenWrongRoom);
    }
    match status {
        ReservationStatus::Confirmed => return Err(ReservationError::AlreadyPaid),
        ReservationStatus::Held if live => {}
        ReservationStatus::Held | ReservationStatus::Expired | ReservationStatus::Cancelled => {
            return Err(ReservationError::HoldExpired);
        }
    }
    // Sell the seat only if this reservation still holds it: a reclaim by someone else after
    // the deadline, or a deadline passing mid-flight, leaves nothing to update.
    let sold = sqlx::query(
        "update seat_claims set held_until = null \
         where concert_option_id = $1 and seat_no = $2 and reservation_id = $3 and held_until > now()",
    )
    .bind(option_id)
    .bind(seat_no)
    .bind(reservation_id)
    .execute(&mut *tx)
    .await?;
    if sold.rows_affected() != 1 {
        return Err(ReservationError::HoldExpired);
    }
    let balance_after = wallets::debit(&mut *tx, user_id, price_minor).await?;
    sqlx::query("update reservations set status = 'CONFIRMED', confirmed_at = now() where id = $1")
        .bind(reservation_id)
        .execute(&mut *tx)
        .await?;
    let (id, paid_at_ms): (i64, i64) = sqlx::query_as(concat!(
        "insert into payments (reservation_id, user_id, amount_minor, balance_after) values ($1, $2, $3, $4) ",
        "returning id, ",
        epoch_ms!("paid_at")
    ))
    .bind(reservation_id)
    .bind(user_id)
    .bind(price_minor)
    .bind(balance_after)
    .fetch_one(&mut *tx)
    .await?;
    Ok(Payment {
        id,
        reservation_id,
        user_id,
        amount_minor: price_minor,
        paid_at_ms,
        balance_after_minor: balance_after,
    })
})
.await
}
