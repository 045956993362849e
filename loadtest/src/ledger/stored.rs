//! What the system holds after a run, read through the API and reservation's own database.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use anyhow::Context;
use futures::{StreamExt, stream};
use sqlx::{Connection, PgConnection};

use super::Seen;
use crate::client::Client;

/// A reservation as reservation's database holds it, with its payment.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredReservation {
    pub status: String,
    pub user: i64,
    pub payment: Option<i64>,
    pub paid: Option<i64>,
}

/// What the system holds, read after the run.
#[derive(Debug, Default)]
pub struct Stored {
    /// The seen payments' reservations, by id.
    pub reservations: HashMap<u64, StoredReservation>,
    /// Seats held (live) or sold by more than one reservation: (option, seat, how many).
    pub seats_twice: Vec<(i64, i32, i64)>,
    /// Sales whose seat's claim does not point at them as sold.
    pub claims_astray: i64,
    /// The wallets of the run's users (a user without a row has 0).
    pub wallets: HashMap<u64, i64>,
    /// Payments of the run's users, by reservation.
    pub payments_of_users: HashSet<u64>,
    /// Through the API: each seen payment's reservation status, each user's balance, and the
    /// seats offered as free in the options where seats were sold.
    pub api_status: HashMap<u64, String>,
    pub api_balances: HashMap<u64, i64>,
    pub offered: HashMap<u64, HashSet<u64>>,
}

/// A reservation's id, status and user, with its payment's id and amount.
type ReservationRow = (i64, String, i64, Option<i64>, Option<i64>);

/// Every statement's deadline, and the connection's.
const DATABASE_DEADLINE: Duration = Duration::from_secs(30);
/// API calls of the checks in flight at once.
const API_CONCURRENCY: usize = 16;

/// `work` on the database, within [`DATABASE_DEADLINE`]; its error says `what` failed.
async fn within<T>(
    what: &str,
    work: impl Future<Output = Result<T, sqlx::Error>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(DATABASE_DEADLINE, work)
        .await
        .map_err(|_| anyhow::anyhow!("{what} took over {DATABASE_DEADLINE:?}"))?
        .with_context(|| what.to_owned())
}

/// Reads what the system holds of `seen`: reservation's database at `database_url`, and the
/// API through `client`.
pub async fn stored(seen: &Seen, client: &Client, database_url: &str) -> anyhow::Result<Stored> {
    let mut stored = Stored::default();
    let mut db = within(
        "connecting to reservation's database",
        PgConnection::connect(database_url),
    )
    .await?;
    let reservations: Vec<i64> = seen.payments.iter().map(|p| p.reservation as i64).collect();
    let rows: Vec<ReservationRow> = within(
        "reading the reservations",
        sqlx::query_as(
            "select r.id, r.status, r.user_id, p.id, p.amount_minor \
             from reservations r left join payments p on p.reservation_id = r.id \
             where r.id = any($1)",
        )
        .bind(&reservations)
        .fetch_all(&mut db),
    )
    .await?;
    for (id, status, user, payment, paid) in rows {
        stored.reservations.insert(
            id as u64,
            StoredReservation {
                status,
                user,
                payment,
                paid,
            },
        );
    }
    stored.seats_twice = within(
        "counting seats held twice",
        sqlx::query_as(
            "select concert_option_id, seat_no, count(*) from reservations \
             where status = 'CONFIRMED' or (status = 'HELD' and expires_at > now()) \
             group by concert_option_id, seat_no having count(*) > 1",
        )
        .fetch_all(&mut db),
    )
    .await?;
    stored.claims_astray = within(
        "reading the sales' claims",
        sqlx::query_scalar(
            "select count(*) from reservations r left join seat_claims c \
             on c.concert_option_id = r.concert_option_id and c.seat_no = r.seat_no \
             where r.status = 'CONFIRMED' \
             and (c.reservation_id is distinct from r.id or c.held_until is not null)",
        )
        .fetch_one(&mut db),
    )
    .await?;
    let users: Vec<i64> = seen.balances.keys().map(|u| *u as i64).collect();
    let wallets: Vec<(i64, i64)> = within(
        "reading the wallets",
        sqlx::query_as("select user_id, balance_minor from wallets where user_id = any($1)")
            .bind(&users)
            .fetch_all(&mut db),
    )
    .await?;
    stored.wallets = wallets.into_iter().map(|(u, b)| (u as u64, b)).collect();
    let paid: Vec<i64> = within(
        "reading the users' payments",
        sqlx::query_scalar("select reservation_id from payments where user_id = any($1)")
            .bind(&users)
            .fetch_all(&mut db),
    )
    .await?;
    stored.payments_of_users = paid.into_iter().map(|r| r as u64).collect();
    let _ = db.close().await;

    // Through the API, each as its owner (with bearer tokens a reservation and a wallet are
    // their owner's to read).
    stored.api_status = stream::iter(&seen.payments)
        .map(|payment| async move {
            let reply = client
                .as_user(payment.user)
                .get(&format!("/api/reservations/{}", payment.reservation))
                .await
                .ok()?;
            Some((
                payment.reservation,
                reply.json["status"].as_str()?.to_owned(),
            ))
        })
        .buffer_unordered(API_CONCURRENCY)
        .filter_map(|found| async move { found })
        .collect()
        .await;
    stored.api_balances = stream::iter(seen.balances.keys())
        .map(|user| async move {
            let reply = client
                .as_user(*user)
                .get(&format!("/api/users/{user}/balance"))
                .await
                .ok()?;
            Some((*user, reply.json["balance"].as_i64()?))
        })
        .buffer_unordered(API_CONCURRENCY)
        .filter_map(|found| async move { found })
        .collect()
        .await;
    let options: HashSet<u64> = seen.payments.iter().map(|p| p.option).collect();
    let mut offered = HashMap::new();
    for option in options {
        let reply = client
            .get(&format!("/api/concert/{option}/available-seats"))
            .await
            .with_context(|| format!("reading option {option}'s free seats"))?;
        let free: HashSet<u64> = reply
            .json
            .as_array()
            .map(|seats| seats.iter().filter_map(|s| s["id"].as_u64()).collect())
            .unwrap_or_default();
        offered.insert(option, free);
    }
    stored.offered = offered;
    Ok(stored)
}
