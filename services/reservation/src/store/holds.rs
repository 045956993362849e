//! Seat holds: exactly one winner per seat, expiry, occupancy.

use std::time::Duration;

use sqlx::{PgExecutor, PgPool};

use crate::{
    domain::{Reservation, Room},
    error::ReservationError,
    store::reservation_columns,
};

/// Seats of option $1 held (unexpired) or sold: one range scan of the seat_claims primary key,
/// which carries `held_until`.
pub const OCCUPANCY: &str = "select seat_no from seat_claims where concert_option_id = $1 \
     and (held_until is null or held_until > now())";

/// Held-or-sold counts for the options in $1: one range scan per option on the same key.
pub const TAKEN_COUNTS: &str = "select concert_option_id, count(*) from seat_claims \
     where concert_option_id = any($1) and (held_until is null or held_until > now()) \
     group by concert_option_id";

/// Held (unexpired) and sold counts per option apart: the operator's view.
pub const HELD_AND_SOLD_COUNTS: &str = "select concert_option_id, \
       count(*) filter (where held_until > now()), count(*) filter (where held_until is null) \
     from seat_claims where concert_option_id = any($1) \
       and (held_until is null or held_until > now()) group by concert_option_id";

/// A hold to make: who, which seat, at what price, admitted by which room.
#[derive(Clone, Debug)]
pub struct NewHold {
    pub user_id: i64,
    pub option_id: i64,
    pub seat_no: i32,
    /// The option's concert: the seat limit counts per user and concert.
    pub concert_id: i64,
    /// The room that admitted the caller, stored so that paying needs the same room.
    pub room: Room,
    pub grade: String,
    pub price_minor: i64,
    pub hold: Duration,
    /// Most seats the user may hold (unexpired) or have bought for the concert; 0 = no limit.
    pub max_seats_per_user: u32,
}

/// One hold in one statement: the `hold_seat` function (migration 0002) serialises one user's
/// holds for one concert, returns the user's own live hold of the seat as it is, enforces the
/// seat limit, and runs the claim upsert that makes the winner unique.
pub const HOLD: &str = concat!(
    "select ",
    reservation_columns!(),
    " from hold_seat($1, $2, $3, $4, $5, $6, $7, $8, $9)"
);

/// SQLSTATE `hold_seat` raises when the user is at the seat limit.
const SEAT_LIMIT_REACHED: &str = "SL001";

/// Holds the seat for the user for `hold`, in one statement: the claim row is inserted, or
/// reclaimed when its previous hold has run out; the user's own live hold of the seat (a retry)
/// is returned as it is; someone else's live hold or a sale leaves it untouched and the
/// statement returns nothing (`SeatTaken`); a user at the limit gets `SeatLimitReached`. The
/// primary key makes the winner unique, and the (user, concert) lock the count exact, under any
/// concurrency.
pub async fn hold<'e>(
    db: impl PgExecutor<'e>,
    new: &NewHold,
) -> Result<Reservation, ReservationError> {
    kit::trace::client(
        "INSERT seat_claims",
        &[
            ("db.system", "postgresql"),
            ("db.operation", "INSERT"),
            ("db.sql.table", "seat_claims"),
        ],
        async move {
            let max_seats = i32::try_from(new.max_seats_per_user).unwrap_or(i32::MAX);
            let result: Result<Option<Reservation>, sqlx::Error> = sqlx::query_as(HOLD)
                .bind(new.option_id)
                .bind(new.seat_no)
                .bind(new.user_id)
                .bind(new.concert_id)
                .bind(new.room.concert_id())
                .bind(new.price_minor)
                .bind(&new.grade)
                .bind(new.hold.as_secs_f64())
                .bind(max_seats)
                .fetch_optional(db)
                .await;
            match result {
                Ok(Some(reservation)) => Ok(reservation),
                Ok(None) => Err(ReservationError::SeatTaken),
                Err(sqlx::Error::Database(error))
                    if error.code().as_deref() == Some(SEAT_LIMIT_REACHED) =>
                {
                    Err(ReservationError::SeatLimitReached {
                        limit: new.max_seats_per_user,
                    })
                }
                Err(error) => Err(error.into()),
            }
        },
    )
    .await
}

pub async fn get<'e>(db: impl PgExecutor<'e>, id: i64) -> Result<Reservation, ReservationError> {
    kit::trace::client(
        "SELECT reservations",
        kit::trace::db::POSTGRES_SELECT,
        async move {
            let reservation: Option<Reservation> = sqlx::query_as(concat!(
                "select ",
                reservation_columns!(),
                " from reservations where id = $1"
            ))
            .bind(id)
            .fetch_optional(db)
            .await?;
            reservation.ok_or(ReservationError::ReservationNotFound)
        },
    )
    .await
}

/// Seat numbers of the option that are held (unexpired) or sold.
pub async fn occupancy(pool: &PgPool, option_id: i64) -> Result<Vec<i32>, ReservationError> {
    kit::trace::client(
        "SELECT seat_claims",
        kit::trace::db::POSTGRES_SELECT,
        async move {
            let rows: Vec<(i32,)> = sqlx::query_as(OCCUPANCY)
                .bind(option_id)
                .fetch_all(pool)
                .await?;
            Ok(rows.into_iter().map(|(seat,)| seat).collect())
        },
    )
    .await
}

/// Held-or-sold counts per option, for many options in one query.
pub async fn count_taken(
    pool: &PgPool,
    option_ids: &[i64],
) -> Result<Vec<(i64, i64)>, ReservationError> {
    kit::trace::client(
        "SELECT seat_claims",
        kit::trace::db::POSTGRES_SELECT,
        async move {
            Ok(sqlx::query_as(TAKEN_COUNTS)
                .bind(option_ids)
                .fetch_all(pool)
                .await?)
        },
    )
    .await
}

/// Held and sold counts per option, for many options in one query: (option, held, sold).
pub async fn count_held_and_sold(
    pool: &PgPool,
    option_ids: &[i64],
) -> Result<Vec<(i64, i64, i64)>, ReservationError> {
    kit::trace::client(
        "SELECT seat_claims",
        kit::trace::db::POSTGRES_SELECT,
        async move {
            Ok(sqlx::query_as(HELD_AND_SOLD_COUNTS)
                .bind(option_ids)
                .fetch_all(pool)
                .await?)
        },
    )
    .await
}

/// Deletes up to $1 claims whose hold has run out: a range scan of `seat_claims_by_expiry`
/// picks them, then each is deleted by its row address (`= any(array(...))`, so the plan never
/// joins the batch against the whole table, whatever the planner guesses its size to be).
pub const SWEEP_CLAIMS: &str = "delete from seat_claims where ctid = any(array( \
       select ctid from seat_claims where held_until <= now() limit $1 for update skip locked))";

/// Marks up to $1 run-out holds EXPIRED: a range scan of `reservations_held_by_expiry` picks
/// them, then each is updated by primary key.
pub const SWEEP_HOLDS: &str = "update reservations set status = 'EXPIRED' where id = any(array( \
       select id from reservations where status = 'HELD' and expires_at <= now() \
       limit $1 for update skip locked))";

/// Marks up to `batch` run-out holds EXPIRED and deletes their claims. Reads and holds already
/// treat them as free; this keeps the tables small and the statuses honest. Returns how many
/// reservations were marked.
pub async fn sweep(pool: &PgPool, batch: i64) -> Result<u64, ReservationError> {
    kit::trace::client(
        "UPDATE reservations (sweep)",
        kit::trace::db::POSTGRES_UPDATE,
        async move {
            sqlx::query(SWEEP_CLAIMS).bind(batch).execute(pool).await?;
            let marked = sqlx::query(SWEEP_HOLDS).bind(batch).execute(pool).await?;
            Ok(marked.rows_affected())
        },
    )
    .await
}
