//! Demo and benchmark data: `catalog seed`. Idempotent: re-running adds nothing that exists.
//! Concert c gets options ((c-1)·O + 1) ..= c·O, so the original load tests' concert 1 has
//! options 1..10 with the defaults. Seeded concerts are admitted by the shared default waiting
//! room, the one the original clients queue in.

use sqlx::PgPool;

/// Sizes of the seeded data set.
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct SeedArgs {
    /// Concerts (ids 1..=N).
    #[arg(long, default_value_t = 1)]
    pub concerts: i64,
    /// Concert options per concert.
    #[arg(long, default_value_t = 10)]
    pub options_per_concert: i64,
    /// Seats per option (numbered 1..=N).
    #[arg(long, default_value_t = 50)]
    pub seats_per_option: i32,
}

pub async fn seed(pool: &PgPool, args: SeedArgs) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    // The original clients queue in the shared default room (no concertId) and book these
    // concerts.
    // A seeded concert already there is put in the shared room too: one seeded before rooms
    // existed got its own room from the migration's default.
    sqlx::query(
        "insert into concerts as k (id, title, artist, description, shared_room) \
         select c, 'Concert ' || c, 'Artist ' || c, 'Demo concert ' || c, true from generate_series(1, $1::bigint) c \
         on conflict (id) do update set shared_room = true where not k.shared_room",
    )
    .bind(args.concerts)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "insert into concert_options (id, concert_id, starts_at, venue, sale_opens_at, seat_count) \
         select (c - 1) * $2::bigint + o, c, date_trunc('day', now()) + make_interval(days => 30 + o::int, hours => 19), \
                'Main Hall', now() - interval '1 hour', $3::int \
         from generate_series(1, $1::bigint) c, generate_series(1, $2::bigint) o \
         on conflict (id) do nothing",
    )
    .bind(args.concerts)
    .bind(args.options_per_concert)
    .bind(args.seats_per_option)
    .execute(&mut *tx)
    .await?;
    // Grades by position: the first tenth VIP, the next three tenths R, the rest S.
    sqlx::query(
        "insert into seats (concert_option_id, seat_no, grade, price_minor) \
         select o.id, s, \
                case when s * 10 <= $1::int then 'VIP' when s * 10 <= $1::int * 4 then 'R' else 'S' end, \
                case when s * 10 <= $1::int then 150000 when s * 10 <= $1::int * 4 then 100000 else 70000 end \
         from concert_options o, generate_series(1, $1::int) s \
         where o.id between 1 and $2::bigint * $3::bigint \
         on conflict do nothing",
    )
    .bind(args.seats_per_option)
    .bind(args.concerts)
    .bind(args.options_per_concert)
    .execute(&mut *tx)
    .await?;
    // Explicit ids bypass the identity sequences: move them past the seeded ids.
    sqlx::query("select setval(pg_get_serial_sequence('concerts', 'id'), greatest((select max(id) from concerts), 1))")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "select setval(pg_get_serial_sequence('concert_options', 'id'), greatest((select max(id) from concert_options), 1))",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    // Bulk-loaded reference data: set the visibility map and statistics now, so seat maps are
    // index-only scans from the first request rather than after autovacuum gets round to it.
    sqlx::raw_sql("vacuum (analyze) concerts, concert_options, seats")
        .execute(pool)
        .await?;
    Ok(())
}
