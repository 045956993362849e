//! The store's scans of whole tables' worth of rows (occupancy, counts, the seat-limit count and
//! the sweeper's batches) stay index scans at a realistic volume.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod support;

use support::migrated_database;

/// 200 options x 1,000 seats, every other seat claimed: 100,000 claims. Of each option's 500
/// claims a tenth are sold, a tenth have run out (not yet swept) and the rest are live holds.
async fn hundred_thousand_claims(pool: &sqlx::PgPool) {
    sqlx::query(
        "insert into seat_claims (concert_option_id, seat_no, reservation_id, held_until) \
         select o, s, o * 1000 + s, \
                case when s % 20 = 1 then null \
                     when s % 20 = 3 then now() - interval '1 minute' \
                     else now() + interval '5 minutes' end \
         from generate_series(1, 200) o, generate_series(1, 1000, 2) s",
    )
    .execute(pool)
    .await
    .expect("claims");
    sqlx::query("analyze").execute(pool).await.expect("analyze");
    let (claims,): (i64,) = sqlx::query_as("select count(*) from seat_claims")
        .fetch_one(pool)
        .await
        .expect("count");
    assert_eq!(claims, 100_000);
}

/// Live (held or sold) claims per option in [`hundred_thousand_claims`].
const LIVE_PER_OPTION: usize = 450;

#[tokio::test]
async fn occupancy_reads_are_index_scans_over_a_hundred_thousand_claims() {
    let pool = migrated_database().await;
    hundred_thousand_claims(&pool).await;

    // GetOccupancy: one option's taken seats, in seat order straight from the key.
    let occupancy = kit::postgres::explain(&pool, reservation::store::holds::OCCUPANCY, 42_i64)
        .await
        .expect("explain");
    assert!(occupancy.contains("seat_claims_pkey"), "{occupancy}");
    assert!(!occupancy.contains("Sort"), "{occupancy}");
    assert!(!occupancy.contains("Seq Scan"), "{occupancy}");
    // CountTaken: many options' counts in one statement.
    let counts = kit::postgres::explain(
        &pool,
        reservation::store::holds::TAKEN_COUNTS,
        vec![1_i64, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    )
    .await
    .expect("explain");
    assert!(counts.contains("seat_claims_pkey"), "{counts}");
    assert!(!counts.contains("Seq Scan"), "{counts}");

    // And both reads agree with the rows: sold and held seats count, run-out ones do not.
    let taken = reservation::store::holds::occupancy(&pool, 42)
        .await
        .expect("occupancy");
    assert_eq!(taken.len(), LIVE_PER_OPTION);
    assert!(taken.iter().all(|seat| seat % 20 != 3), "{taken:?}");
    let mut counts = reservation::store::holds::count_taken(&pool, &[41, 42, 201])
        .await
        .expect("count taken");
    counts.sort_unstable();
    assert_eq!(counts, vec![(41, 450), (42, 450)]);
}

#[tokio::test]
async fn held_and_sold_counts_are_one_index_scan_and_split_live_claims_by_kind() {
    let pool = migrated_database().await;
    hundred_thousand_claims(&pool).await;
    let plan = kit::postgres::explain(
        &pool,
        reservation::store::holds::HELD_AND_SOLD_COUNTS,
        vec![1_i64, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    )
    .await
    .expect("explain");
    assert!(plan.contains("seat_claims_pkey"), "{plan}");
    assert!(!plan.contains("Seq Scan"), "{plan}");

    // Of each option's 500 claims: 50 sold (held_until null), 50 run out, 400 held.
    let mut counts = reservation::store::holds::count_held_and_sold(&pool, &[41, 42, 201])
        .await
        .expect("count held and sold");
    counts.sort_unstable();
    assert_eq!(counts, vec![(41, 400, 50), (42, 400, 50)]);
}

#[tokio::test]
async fn the_sweepers_batches_are_index_scans_over_a_hundred_thousand_reservations() {
    let pool = migrated_database().await;
    // A sweeper's steady state: of 100,000 reservations 60% are paid, 30% expired and swept,
    // 9% live holds and 1% holds run out since the last sweep; every one not swept has its
    // seat's claim (sold, or held until the reservation's deadline).
    sqlx::raw_sql(
        "insert into reservations (id, user_id, concert_option_id, seat_no, status, price_minor, \
                                   grade, expires_at, concert_id) \
         select n, n % 10000 + 1, n / 1000 + 1, n % 1000 + 1, \
                case when n % 100 < 60 then 'CONFIRMED' when n % 100 < 90 then 'EXPIRED' \
                     else 'HELD' end, \
                1000, 'S', \
                case when n % 100 < 90 then now() - interval '1 hour' \
                     when n % 100 < 99 then now() + interval '5 minutes' \
                     else now() - interval '1 minute' end, \
                n / 10000 + 1 \
         from generate_series(1, 100000) n; \
         insert into seat_claims (concert_option_id, seat_no, reservation_id, held_until) \
         select concert_option_id, seat_no, id, \
                case when status = 'CONFIRMED' then null else expires_at end \
         from reservations where status <> 'EXPIRED'; \
         analyze;",
    )
    .execute(&pool)
    .await
    .expect("reservations and claims");

    let claims = kit::postgres::explain(&pool, reservation::store::holds::SWEEP_CLAIMS, 1000_i64)
        .await
        .expect("explain");
    assert!(claims.contains("seat_claims_by_expiry"), "{claims}");
    assert!(!claims.contains("Seq Scan"), "{claims}");
    let holds = kit::postgres::explain(&pool, reservation::store::holds::SWEEP_HOLDS, 1000_i64)
        .await
        .expect("explain");
    assert!(holds.contains("reservations_held_by_expiry"), "{holds}");
    assert!(holds.contains("reservations_pkey"), "{holds}");
    assert!(!holds.contains("Seq Scan"), "{holds}");

    // And a batch takes what has run out and nothing else.
    let marked = reservation::store::holds::sweep(&pool, 100_000)
        .await
        .expect("sweep");
    assert_eq!(marked, 1_000);
    let (claims, held): (i64, i64) = sqlx::query_as(
        "select (select count(*) from seat_claims), \
                (select count(*) from reservations where status = 'HELD')",
    )
    .fetch_one(&pool)
    .await
    .expect("counts");
    assert_eq!((claims, held), (69_000, 9_000));
}

/// How `hold_seat` (migration 0002) counts a user's live seats of a concert, with its
/// parameters as `$1` (user) and `$2` (concert); the test checks the function says the same.
const LIVE_SEATS_OF_USER: &str = "select count(*) from reservations \
     where user_id = $1 and concert_id = $2 \
     and status in ('HELD', 'CONFIRMED') and (status = 'CONFIRMED' or expires_at > now())";

fn squeeze(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn the_seat_limit_count_is_one_index_scan_over_a_hundred_thousand_reservations() {
    let pool = migrated_database().await;

    let (body,): (String,) =
        sqlx::query_as("select prosrc from pg_proc where proname = 'hold_seat'")
            .fetch_one(&pool)
            .await
            .expect("hold_seat");
    let in_function = squeeze(LIVE_SEATS_OF_USER)
        .replace("count(*)", "count(*) into live_seats")
        .replace("$1", "p_user_id")
        .replace("$2", "p_concert_id");
    assert!(squeeze(&body).contains(&in_function), "{body}");

    // 10,000 users x 10 concerts, a quarter of the reservations expired, a tenth paid.
    sqlx::query(
        "insert into reservations (user_id, concert_option_id, seat_no, status, price_minor, grade, \
                                   expires_at, concert_id) \
         select n % 10000 + 1, n % 100 + 1, n, \
                case when n % 4 = 0 then 'EXPIRED' when n % 10 = 1 then 'CONFIRMED' else 'HELD' end, \
                1000, 'S', now() + interval '5 minutes', n % 10 + 1 \
         from generate_series(1, 100000) n",
    )
    .execute(&pool)
    .await
    .expect("reservations");
    sqlx::query("analyze")
        .execute(&pool)
        .await
        .expect("analyze");

    let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "explain (costs off) {LIVE_SEATS_OF_USER}"
    )))
    .bind(42_i64)
    .bind(2_i64)
    .fetch_all(&pool)
    .await
    .expect("explain");
    let plan = rows
        .into_iter()
        .map(|(line,)| line)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        plan.contains("using reservations_live_by_user_concert"),
        "{plan}"
    );
    assert!(!plan.contains("Seq Scan"), "{plan}");
}
