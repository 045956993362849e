//! Demo and benchmark data: `catalog seed`. Idempotent: re-running adds nothing that exists.
//! Concert c gets options ((c-1)·O + 1) ..= c·O, so the original load tests' concert 1 has
//! options 1..10 with the defaults. Seeded concerts are admitted by the shared default waiting
//! room, the one the original clients queue in.
//!
//! Presale concerts (`--presale-concerts N`, default none) come after them: concerts C+1 ..= C+N,
//! one option each (ids C·O + 1 ..= C·O + N) of `--presale-seats` seats, on sale already, each
//! with its own waiting room, the one an operator schedules an opening for. Their ids depend on
//! the shared sizes: re-seed a database with the sizes it was seeded with.

use std::ops::RangeInclusive;

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

/// Concerts with their own waiting room, seeded after the shared ones.
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub struct PresaleArgs {
    /// Presale concerts, each with its own waiting room and one option (ids after the
    /// shared concerts' and options').
    #[arg(long, default_value_t = 0)]
    pub presale_concerts: i64,
    /// Seats of each presale concert's option (numbered 1..=N).
    #[arg(long, default_value_t = 2000)]
    pub presale_seats: i32,
}

/// What `catalog seed` takes: the shared data set and the presale concerts.
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct SeedCommand {
    #[command(flatten)]
    pub data: SeedArgs,
    #[command(flatten)]
    pub presale: PresaleArgs,
}

impl PresaleArgs {
    /// The presale concerts' ids, after the shared ones (empty without presale concerts).
    pub fn concert_ids(&self, data: &SeedArgs) -> RangeInclusive<i64> {
        data.concerts + 1..=data.concerts + self.presale_concerts
    }

    /// The first presale option's id, after the shared concerts' options.
    fn first_option(&self, data: &SeedArgs) -> i64 {
        data.concerts * data.options_per_concert + 1
    }
}

/// The shared data set alone (what every test and the original load tests use).
pub async fn seed(pool: &PgPool, args: SeedArgs) -> Result<(), sqlx::Error> {
    seed_with_presale(pool, args, PresaleArgs::default()).await
}

pub async fn seed_with_presale(
    pool: &PgPool,
    args: SeedArgs,
    presale: PresaleArgs,
) -> Result<(), sqlx::Error> {
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
    insert_seats(
        &mut tx,
        1..=args.concerts * args.options_per_concert,
        args.seats_per_option,
    )
    .await?;
    if presale.presale_concerts > 0 {
        seed_presale(&mut tx, &args, &presale).await?;
    }
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

/// Presale concerts: own waiting room, one option on sale since an hour ago.
async fn seed_presale(
    tx: &mut sqlx::PgConnection,
    args: &SeedArgs,
    presale: &PresaleArgs,
) -> Result<(), sqlx::Error> {
    let concerts = presale.concert_ids(args);
    // Put back in its own room if something moved it to the shared one: operators schedule
    // the opening of the concert's own room.
    sqlx::query(
        "insert into concerts as k (id, title, artist, description, shared_room) \
         select c, 'Presale ' || c, 'Artist ' || c, 'Presale demo concert ' || c, false \
         from generate_series($1::bigint, $2::bigint) c \
         on conflict (id) do update set shared_room = false where k.shared_room",
    )
    .bind(concerts.start())
    .bind(concerts.end())
    .execute(&mut *tx)
    .await?;
    let first_option = presale.first_option(args);
    sqlx::query(
        "insert into concert_options (id, concert_id, starts_at, venue, sale_opens_at, seat_count) \
         select $1::bigint + n, $2::bigint + n, date_trunc('day', now()) + make_interval(days => 60 + n::int, hours => 20), \
                'Arena', now() - interval '1 hour', $4::int \
         from generate_series(0, $3::bigint - 1) n \
         on conflict (id) do nothing",
    )
    .bind(first_option)
    .bind(concerts.start())
    .bind(presale.presale_concerts)
    .bind(presale.presale_seats)
    .execute(&mut *tx)
    .await?;
    insert_seats(
        tx,
        first_option..=first_option + presale.presale_concerts - 1,
        presale.presale_seats,
    )
    .await
}

/// Seats 1..=`seats` of each option in `options`. Grades by position: the first tenth VIP,
/// the next three tenths R, the rest S.
async fn insert_seats(
    tx: &mut sqlx::PgConnection,
    options: RangeInclusive<i64>,
    seats: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into seats (concert_option_id, seat_no, grade, price_minor) \
         select o.id, s, \
                case when s * 10 <= $1::int then 'VIP' when s * 10 <= $1::int * 4 then 'R' else 'S' end, \
                case when s * 10 <= $1::int then 150000 when s * 10 <= $1::int * 4 then 100000 else 70000 end \
         from concert_options o, generate_series(1, $1::int) s \
         where o.id between $2::bigint and $3::bigint \
         on conflict do nothing",
    )
    .bind(seats)
    .bind(options.start())
    .bind(options.end())
    .execute(tx)
    .await?;
    Ok(())
}
