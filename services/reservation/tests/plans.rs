//! The occupancy reads stay single index scans at a realistic volume of claims.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

/// A fresh database with this service's schema.
async fn migrated_database() -> sqlx::PgPool {
    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let url = kit::postgres::fresh_database(&server)
        .await
        .expect("fresh database");
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    reservation::MIGRATOR.run(&pool).await.expect("migrate");
    pool
}

#[tokio::test]
async fn occupancy_reads_are_index_scans_over_a_hundred_thousand_claims() {
    let pool = migrated_database().await;
    // 100 options x 1,000 seats, half of them held, some sold.
    sqlx::query(
        "insert into seat_claims (concert_option_id, seat_no, reservation_id, held_until) \
         select o, s, o * 1000 + s, case when s % 10 = 0 then null else now() + interval '5 minutes' end \
         from generate_series(1, 100) o, generate_series(1, 1000, 2) s",
    )
    .execute(&pool)
    .await
    .expect("claims");
    sqlx::query("analyze")
        .execute(&pool)
        .await
        .expect("analyze");

    let occupancy = kit::postgres::explain(&pool, reservation::store::holds::OCCUPANCY, 42_i64)
        .await
        .expect("explain");
    assert!(occupancy.contains("on seat_claims_pkey"), "{occupancy}");
    assert!(!occupancy.contains("Sort"), "{occupancy}");
    assert!(!occupancy.contains("Seq Scan"), "{occupancy}");
    let counts = kit::postgres::explain(
        &pool,
        reservation::store::holds::TAKEN_COUNTS,
        vec![1_i64, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    )
    .await
    .expect("explain");
    assert!(counts.contains("on seat_claims_pkey"), "{counts}");
    assert!(!counts.contains("Seq Scan"), "{counts}");

    // And the occupancy read agrees with the rows: 500 claims per option, all live.
    let taken = reservation::store::holds::occupancy(&pool, 42)
        .await
        .expect("occupancy");
    assert_eq!(taken.len(), 500);
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
