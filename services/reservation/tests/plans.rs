//! The occupancy reads stay single index scans at a realistic volume of claims.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

#[tokio::test]
async fn occupancy_reads_are_index_scans_over_a_hundred_thousand_claims() {
    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let url = kit::postgres::fresh_database(&server)
        .await
        .expect("fresh database");
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    reservation::MIGRATOR.run(&pool).await.expect("migrate");
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
