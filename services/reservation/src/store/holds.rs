//! Seat holds: exactly one winner per seat, expiry, occupancy.

use std::time::Duration;

use sqlx::{PgExecutor, PgPool};

use crate::{domain::Reservation, error::ReservationError, store::reservation_columns};

/// Seats of option $1 held (unexpired) or sold: one range scan of the seat_claims primary key,
/// which carries `held_until`.
pub const OCCUPANCY: &str = "select seat_no from seat_claims where concert_option_id = $1 \
     and (held_until is null or held_until > now())";

/// Held-or-sold counts for the options in $1: one range scan per option on the same key.
pub const TAKEN_COUNTS: &str = "select concert_option_id, count(*) from seat_claims \
     where concert_option_id = any($1) and (held_until is null or held_until > now()) \
     group by concert_option_id";

/// Holds the seat for `user_id` for `hold`, in one statement: the claim row is inserted, or
/// reclaimed when its previous hold has run out; a live hold or a sale leaves it untouched and
/// the statement returns nothing (`SeatTaken`). The primary key makes the winner unique under
/// any concurrency.
#[tracing::instrument(
    name = "INSERT seat_claims",
    skip_all,
    fields(otel.kind = "client", db.system = "postgresql", db.operation = "INSERT", db.sql.table = "seat_claims")
)]
pub async fn hold<'e>(
    db: impl PgExecutor<'e>,
    user_id: i64,
    option_id: i64,
    seat_no: i32,
    grade: &str,
    price_minor: i64,
    hold: Duration,
) -> Result<Reservation, ReservationError> {
    let reservation: Option<Reservation> = sqlx::query_as(concat!(
        "with claim as ( ",
        "  insert into seat_claims as c (concert_option_id, seat_no, reservation_id, held_until) ",
        "  values ($1, $2, nextval('reservations_id_seq'), now() + make_interval(secs => $3)) ",
        "  on conflict (concert_option_id, seat_no) do update ",
        "    set reservation_id = excluded.reservation_id, held_until = excluded.held_until ",
        "    where c.held_until is not null and c.held_until <= now() ",
        "  returning reservation_id, held_until ",
        ") ",
        "insert into reservations (id, user_id, concert_option_id, seat_no, status, price_minor, grade, expires_at) ",
        "select reservation_id, $4, $1, $2, 'HELD', $5, $6, held_until from claim ",
        "returning ",
        reservation_columns!()
    ))
    .bind(option_id)
    .bind(seat_no)
    .bind(hold.as_secs_f64())
    .bind(user_id)
    .bind(price_minor)
    .bind(grade)
    .fetch_optional(db)
    .await?;
    reservation.ok_or(ReservationError::SeatTaken)
}

#[tracing::instrument(name = "SELECT reservations", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn get<'e>(db: impl PgExecutor<'e>, id: i64) -> Result<Reservation, ReservationError> {
    let reservation: Option<Reservation> = sqlx::query_as(concat!(
        "select ",
        reservation_columns!(),
        " from reservations where id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?;
    reservation.ok_or(ReservationError::ReservationNotFound)
}

/// Seat numbers of the option that are held (unexpired) or sold.
#[tracing::instrument(name = "SELECT seat_claims", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn occupancy(pool: &PgPool, option_id: i64) -> Result<Vec<i32>, ReservationError> {
    let rows: Vec<(i32,)> = sqlx::query_as(OCCUPANCY)
        .bind(option_id)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(|(seat,)| seat).collect())
}

/// Held-or-sold counts per option, for many options in one query.
#[tracing::instrument(name = "SELECT seat_claims", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "SELECT"))]
pub async fn count_taken(
    pool: &PgPool,
    option_ids: &[i64],
) -> Result<Vec<(i64, i64)>, ReservationError> {
    Ok(sqlx::query_as(TAKEN_COUNTS)
        .bind(option_ids)
        .fetch_all(pool)
        .await?)
}

/// Marks up to `batch` run-out holds EXPIRED and deletes their claims. Reads and holds already
/// treat them as free; this keeps the tables small and the statuses honest. Returns how many
/// reservations were marked.
#[tracing::instrument(name = "UPDATE reservations (sweep)", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.operation = "UPDATE"))]
pub async fn sweep(pool: &PgPool, batch: i64) -> Result<u64, ReservationError> {
    sqlx::query(
        "delete from seat_claims where ctid in ( \
           select ctid from seat_claims where held_until <= now() limit $1 for update skip locked)",
    )
    .bind(batch)
    .execute(pool)
    .await?;
    let marked = sqlx::query(
        "update reservations set status = 'EXPIRED' where id in ( \
           select id from reservations where status = 'HELD' and expires_at <= now() \
           limit $1 for update skip locked)",
    )
    .bind(batch)
    .execute(pool)
    .await?;
    Ok(marked.rows_affected())
}
