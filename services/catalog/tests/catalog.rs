//! The catalog over gRPC on its own fresh database, seeded with the demo data.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

use clap::Parser;
use kit::grpc::TracedChannel as Channel;
use ticketing_proto::catalog::v1::{self as pb, catalog_service_client::CatalogServiceClient};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    config: catalog::Config,
}

fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn start(seed: catalog::seed::SeedArgs) -> CatalogServiceClient<Channel> {
    start_with_pool(seed).await.0
}

/// The catalog on a fresh, seeded database, and a pool on that database.
async fn start_with_pool(
    seed: catalog::seed::SeedArgs,
) -> (CatalogServiceClient<Channel>, sqlx::PgPool) {
    let database_url = kit::postgres::fresh_database(&server_url())
        .await
        .expect("fresh database");
    let config = Args::parse_from([
        "catalog",
        "--listen-addr=127.0.0.1:0",
        "--metrics-addr=127.0.0.1:0",
        &format!("--database-url={database_url}"),
        "--db-pool-size=4",
    ])
    .config;
    let pool = catalog::prepare_database(&config).await.expect("migrate");
    catalog::seed::seed(&pool, seed).await.expect("seed");
    // Seeding twice adds nothing.
    catalog::seed::seed(&pool, seed).await.expect("seed again");
    let (addr, serve) = catalog::build(config, std::future::pending())
        .await
        .expect("catalog starts");
    tokio::spawn(serve);
    let client = CatalogServiceClient::new(
        kit::grpc::channel(
            &format!("http://{addr}"),
            kit::grpc::ChannelTimeouts::default(),
        )
        .expect("channel"),
    );
    (client, pool)
}

fn demo() -> catalog::seed::SeedArgs {
    catalog::seed::SeedArgs {
        concerts: 1,
        options_per_concert: 10,
        seats_per_option: 50,
    }
}

#[tokio::test]
async fn the_demo_data_is_what_the_original_load_tests_expect() {
    let mut client = start(demo()).await;
    let concerts = client
        .list_concerts(pb::ListConcertsRequest {})
        .await
        .expect("concerts")
        .into_inner();
    assert_eq!(concerts.concerts.len(), 1);
    assert_eq!(concerts.concerts[0].id, 1);
    // The original clients queue without a concertId: the shared room admits to the demo data.
    assert!(concerts.concerts[0].shared_room);

    let options = client
        .list_options(pb::ListOptionsRequest { concert_id: 1 })
        .await
        .expect("options")
        .into_inner()
        .options;
    assert_eq!(
        options.iter().map(|o| o.id).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    assert!(
        options
            .windows(2)
            .all(|w| w[0].starts_at_unix_ms < w[1].starts_at_unix_ms)
    );
    assert!(
        options
            .iter()
            .all(|o| o.seat_count == 50 && o.concert_id == 1)
    );

    let map = client
        .get_seat_map(pb::GetSeatMapRequest {
            concert_option_id: 3,
        })
        .await
        .expect("seat map")
        .into_inner();
    assert_eq!(
        map.seats.iter().map(|s| s.seat_no).collect::<Vec<_>>(),
        (1..=50).collect::<Vec<_>>()
    );
    assert_eq!(map.seats.iter().filter(|s| s.grade == "VIP").count(), 5);
    assert_eq!(map.seats.iter().filter(|s| s.grade == "R").count(), 15);
    assert!(map.sale_opens_at_unix_ms > 0);
    assert_eq!((map.concert_id, map.shared_room), (1, true));
    let first = &map.seats[0];
    assert_eq!((first.grade.as_str(), first.price_minor), ("VIP", 150_000));
}

#[tokio::test]
async fn larger_sets_seed_with_distinct_option_ranges() {
    let mut client = start(catalog::seed::SeedArgs {
        concerts: 3,
        options_per_concert: 4,
        seats_per_option: 1000,
    })
    .await;
    // Concert c has options (c-1)*4+1 ..= c*4, each with its whole seat map.
    for concert_id in 1..=3_i64 {
        let options = client
            .list_options(pb::ListOptionsRequest { concert_id })
            .await
            .expect("options")
            .into_inner()
            .options;
        let first = (concert_id - 1) * 4 + 1;
        assert_eq!(
            options.iter().map(|o| o.id).collect::<Vec<_>>(),
            (first..first + 4).collect::<Vec<_>>(),
            "concert {concert_id}"
        );
        assert!(
            options
                .iter()
                .all(|o| o.concert_id == concert_id && o.seat_count == 1000)
        );
    }
    let map = client
        .get_seat_map(pb::GetSeatMapRequest {
            concert_option_id: 12,
        })
        .await
        .expect("seat map")
        .into_inner();
    assert_eq!(
        map.seats.iter().map(|s| s.seat_no).collect::<Vec<_>>(),
        (1..=1000).collect::<Vec<_>>()
    );
    assert_eq!(map.concert_id, 3);
}

#[tokio::test]
async fn unknown_and_invalid_ids_have_stable_codes() {
    let mut client = start(demo()).await;
    assert_eq!(
        failure(
            client
                .list_options(pb::ListOptionsRequest { concert_id: 99 })
                .await
        ),
        (tonic::Code::NotFound, "CONCERT_NOT_FOUND".into())
    );
    assert_eq!(
        failure(
            client
                .list_options(pb::ListOptionsRequest { concert_id: 0 })
                .await
        ),
        (tonic::Code::InvalidArgument, "INVALID_CONCERT_ID".into())
    );
    assert_eq!(
        failure(
            client
                .get_concert(pb::GetConcertRequest { concert_id: 99 })
                .await
        ),
        (tonic::Code::NotFound, "CONCERT_NOT_FOUND".into())
    );
    assert_eq!(
        failure(
            client
                .get_concert(pb::GetConcertRequest { concert_id: -1 })
                .await
        ),
        (tonic::Code::InvalidArgument, "INVALID_CONCERT_ID".into())
    );
    assert_eq!(
        failure(
            client
                .get_seat_map(pb::GetSeatMapRequest {
                    concert_option_id: 11
                })
                .await
        ),
        (tonic::Code::NotFound, "OPTION_NOT_FOUND".into())
    );
    for concert_option_id in [0, -4] {
        assert_eq!(
            failure(
                client
                    .get_seat_map(pb::GetSeatMapRequest { concert_option_id })
                    .await
            ),
            (
                tonic::Code::InvalidArgument,
                "INVALID_CONCERT_OPTION_ID".into()
            )
        );
    }
}

#[tokio::test]
async fn concerts_listed_or_got_and_seat_maps_say_which_room_admits_to_the_concert() {
    let (mut client, pool) = start_with_pool(catalog::seed::SeedArgs {
        concerts: 2,
        options_per_concert: 2,
        seats_per_option: 10,
    })
    .await;
    // Concert 2 gets its own room; a concert added without saying gets its own room too.
    catalog::testing::give_own_room(&pool, 2)
        .await
        .expect("own room");
    let (added,): (i64,) = sqlx::query_as(
        "insert into concerts (title, artist) values ('Added', 'Someone') returning id",
    )
    .fetch_one(&pool)
    .await
    .expect("insert concert");

    let concert = |id| pb::GetConcertRequest { concert_id: id };
    let shared = client.get_concert(concert(1)).await.expect("concert 1");
    assert_eq!(
        shared.into_inner(),
        pb::Concert {
            id: 1,
            title: "Concert 1".into(),
            artist: "Artist 1".into(),
            description: "Demo concert 1".into(),
            shared_room: true,
        }
    );
    let own = client.get_concert(concert(2)).await.expect("concert 2");
    assert!(!own.into_inner().shared_room);
    let new = client.get_concert(concert(added)).await.expect("added");
    assert!(!new.into_inner().shared_room);

    let listed = client
        .list_concerts(pb::ListConcertsRequest {})
        .await
        .expect("concerts")
        .into_inner()
        .concerts;
    assert_eq!(
        listed
            .iter()
            .map(|c| (c.id, c.shared_room))
            .collect::<Vec<_>>(),
        vec![(1, true), (2, false), (added, false)]
    );

    // Options 1-2 belong to concert 1, options 3-4 to concert 2.
    for (option, concert_id, shared_room) in [(2, 1, true), (3, 2, false)] {
        let map = client
            .get_seat_map(pb::GetSeatMapRequest {
                concert_option_id: option,
            })
            .await
            .expect("seat map")
            .into_inner();
        assert_eq!((map.concert_id, map.shared_room), (concert_id, shared_room));
        assert_eq!(map.seats.len(), 10);
    }
}

#[tokio::test]
async fn seeding_again_puts_the_seeded_concerts_back_in_the_shared_room() {
    let (mut client, pool) = start_with_pool(demo()).await;
    // As a concert seeded before rooms existed: the migration's default gave it its own room.
    sqlx::query("update concerts set shared_room = false")
        .execute(&pool)
        .await
        .expect("own room");
    catalog::seed::seed(&pool, demo())
        .await
        .expect("seed again");
    let concert = client
        .get_concert(pb::GetConcertRequest { concert_id: 1 })
        .await
        .expect("concert")
        .into_inner();
    assert!(concert.shared_room);
    let (options, seats): (i64, i64) = sqlx::query_as(
        "select (select count(*) from concert_options), (select count(*) from seats)",
    )
    .fetch_one(&pool)
    .await
    .expect("counts");
    assert_eq!((options, seats), (10, 500));
}

#[test]
fn by_default_the_seed_command_is_the_demo_data_without_presale_concerts() {
    #[derive(Parser)]
    struct Seed {
        #[command(flatten)]
        seed: catalog::seed::SeedCommand,
    }
    let seed = Seed::parse_from(["seed"]).seed;
    assert_eq!(
        (
            seed.data.concerts,
            seed.data.options_per_concert,
            seed.data.seats_per_option
        ),
        (1, 10, 50)
    );
    assert_eq!(seed.presale.presale_concerts, 0);
    assert!(seed.presale.concert_ids(&seed.data).is_empty());
    let asked =
        Seed::parse_from(["seed", "--presale-concerts", "2", "--presale-seats", "300"]).seed;
    assert_eq!(asked.presale.concert_ids(&asked.data), 2..=3);
    assert_eq!(asked.presale.presale_seats, 300);
}

#[tokio::test]
async fn presale_concerts_come_after_the_shared_ones_in_their_own_rooms_on_sale() {
    let (mut client, pool) = start_with_pool(demo()).await;
    let presale = catalog::seed::PresaleArgs {
        presale_concerts: 2,
        presale_seats: 30,
    };
    // Twice: the second adds nothing.
    for _ in 0..2 {
        catalog::seed::seed_with_presale(&pool, demo(), presale)
            .await
            .expect("seed with presale");
    }
    let concerts = client
        .list_concerts(pb::ListConcertsRequest {})
        .await
        .expect("concerts")
        .into_inner()
        .concerts;
    assert_eq!(
        concerts
            .iter()
            .map(|c| (c.id, c.shared_room))
            .collect::<Vec<_>>(),
        vec![(1, true), (2, false), (3, false)]
    );
    // One option each, after the shared concert's options 1..=10.
    for (concert_id, option_id) in [(2, 11), (3, 12)] {
        let options = client
            .list_options(pb::ListOptionsRequest { concert_id })
            .await
            .expect("options")
            .into_inner()
            .options;
        assert_eq!(options.len(), 1, "concert {concert_id}");
        assert_eq!((options[0].id, options[0].seat_count), (option_id, 30));
        let map = client
            .get_seat_map(pb::GetSeatMapRequest {
                concert_option_id: option_id,
            })
            .await
            .expect("seat map")
            .into_inner();
        assert_eq!(
            map.seats.iter().map(|s| s.seat_no).collect::<Vec<_>>(),
            (1..=30).collect::<Vec<_>>()
        );
        assert_eq!((map.concert_id, map.shared_room), (concert_id, false));
        // On sale already.
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        assert!(map.sale_opens_at_unix_ms < now_ms);
    }
    // The demo data is as it was; the presale seats are added once.
    let (options, seats): (i64, i64) = sqlx::query_as(
        "select (select count(*) from concert_options), (select count(*) from seats)",
    )
    .fetch_one(&pool)
    .await
    .expect("counts");
    assert_eq!((options, seats), (12, 500 + 60));
    // A concert added later gets the next id.
    let (added,): (i64,) = sqlx::query_as(
        "insert into concerts (title, artist) values ('Added', 'Someone') returning id",
    )
    .fetch_one(&pool)
    .await
    .expect("insert concert");
    assert_eq!(added, 4);
}

#[tokio::test]
async fn seeding_again_puts_a_presale_concert_back_in_its_own_room() {
    let (_client, pool) = start_with_pool(demo()).await;
    let presale = catalog::seed::PresaleArgs {
        presale_concerts: 1,
        presale_seats: 10,
    };
    catalog::seed::seed_with_presale(&pool, demo(), presale)
        .await
        .expect("seed");
    sqlx::query("update concerts set shared_room = true where id = 2")
        .execute(&pool)
        .await
        .expect("shared room");
    catalog::seed::seed_with_presale(&pool, demo(), presale)
        .await
        .expect("seed again");
    let (shared,): (bool,) = sqlx::query_as("select shared_room from concerts where id = 2")
        .fetch_one(&pool)
        .await
        .expect("concert 2");
    assert!(!shared);
}

/// The gRPC code and stable error code of a call that must fail.
fn failure<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> (tonic::Code, String) {
    let status = result.expect_err("the call must fail");
    let code = kit::error_code::of(&status).unwrap_or("").to_owned();
    (status.code(), code)
}

/// The statements `repo.rs` runs, by the const each call passes: every `sqlx::query*(` call in
/// the file, so a statement added inline or under a new const is caught.
fn statements_run_by_the_repo() -> Vec<String> {
    let source = include_str!("../src/repo.rs");
    let mut names = Vec::new();
    for (at, _) in source.match_indices("sqlx::query") {
        let call = &source[at..];
        let open = call.find('(').expect("a call");
        let argument: String = call[open + 1..]
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        names.push(argument);
    }
    names
}

fn plan_lines(rows: Vec<(String,)>) -> String {
    rows.into_iter()
        .map(|(line,)| line)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The plan of one of the repo's statements, with `$1` (if it has one) bound to `id`.
async fn plan_of(pool: &sqlx::PgPool, sql: &str, id: i64) -> String {
    if sql.contains("$1") {
        kit::postgres::explain(pool, sql, id)
            .await
            .expect("explain")
    } else {
        let rows: Vec<(String,)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("explain (costs off) {sql}")))
                .fetch_all(pool)
                .await
                .expect("explain");
        plan_lines(rows)
    }
}

#[tokio::test]
async fn every_statement_of_the_repo_is_an_index_scan_at_a_realistic_volume() {
    // Every statement the repo runs is one of the named reads, and each is run.
    let run = statements_run_by_the_repo();
    let named: Vec<&str> = catalog::repo::READS.iter().map(|(name, _)| *name).collect();
    assert!(
        run.iter().all(|name| named.contains(&name.as_str())),
        "repo.rs runs {run:?}; the reads explained here are {named:?}"
    );
    assert!(
        named.iter().all(|name| run.iter().any(|r| r == name)),
        "repo.rs runs {run:?}; the reads explained here are {named:?}"
    );

    let database_url = kit::postgres::fresh_database(&server_url())
        .await
        .expect("fresh database");
    let config = Args::parse_from(["catalog", &format!("--database-url={database_url}")]).config;
    let pool = catalog::prepare_database(&config).await.expect("migrate");
    catalog::seed::seed(
        &pool,
        catalog::seed::SeedArgs {
            concerts: 20,
            options_per_concert: 10,
            seats_per_option: 500,
        },
    )
    .await
    .expect("seed");
    // More concerts and options than fit a page or two (each with one option, no seats), else a
    // sequential scan of them is the cheaper plan.
    sqlx::raw_sql(
        "insert into concerts (title, artist) select 'More ' || n, 'Artist' from generate_series(1, 5000) n; \
         insert into concert_options (concert_id, starts_at, venue, sale_opens_at) \
         select id, now(), 'Hall', now() from concerts where title like 'More %'",
    )
    .execute(&pool)
    .await
    .expect("more concerts");
    sqlx::query("analyze")
        .execute(&pool)
        .await
        .expect("analyze");

    // What each read must use: (statement, its id, indexes in its plan, whether its rows come
    // in order from the index). A concert's options (a handful) are sorted after the join.
    let expected: [(&str, i64, &[&str], bool); 5] = [
        ("ALL_CONCERTS", 0, &["Index Scan using concerts_pkey"], true),
        ("CONCERT_BY_ID", 7, &["concerts_pkey"], true),
        (
            "OPTIONS_OF_CONCERT",
            7,
            &["concerts_pkey", "concert_options_by_concert"],
            false,
        ),
        (
            "OPTION_OF_SEAT_MAP",
            77,
            &["concert_options_pkey", "concerts_pkey"],
            true,
        ),
        (
            "SEATS_OF_OPTION",
            77,
            &["Index Only Scan using seats_pkey"],
            true,
        ),
    ];
    assert_eq!(expected.len(), catalog::repo::READS.len());
    for (name, sql) in catalog::repo::READS {
        let (_, id, indexes, in_index_order) = expected
            .iter()
            .find(|(expected_name, ..)| *expected_name == name)
            .unwrap_or_else(|| panic!("no expected plan for {name}"));
        let plan = plan_of(&pool, sql, *id).await;
        for index in *indexes {
            assert!(plan.contains(index), "{name} does not use {index}:\n{plan}");
        }
        assert!(!plan.contains("Seq Scan"), "{name}:\n{plan}");
        if *in_index_order {
            assert!(!plan.contains("Sort"), "{name}:\n{plan}");
        }
    }
}
