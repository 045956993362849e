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
    let options = client
        .list_options(pb::ListOptionsRequest { concert_id: 3 })
        .await
        .expect("options")
        .into_inner()
        .options;
    assert_eq!(
        options.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![9, 10, 11, 12]
    );
    let map = client
        .get_seat_map(pb::GetSeatMapRequest {
            concert_option_id: 12,
        })
        .await
        .expect("seat map")
        .into_inner();
    assert_eq!(map.seats.len(), 1000);
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
}

#[tokio::test]
async fn get_concert_and_seat_maps_say_which_room_admits_to_the_concert() {
    let (mut client, pool) = start_with_pool(catalog::seed::SeedArgs {
        concerts: 2,
        options_per_concert: 2,
        seats_per_option: 10,
    })
    .await;
    // Concert 2 gets its own room; a concert added without saying gets its own room too.
    sqlx::query("update concerts set shared_room = false where id = 2")
        .execute(&pool)
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

/// The gRPC code and stable error code of a call that must fail.
fn failure<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> (tonic::Code, String) {
    let status = result.expect_err("the call must fail");
    let code = kit::error_code::of(&status).unwrap_or("").to_owned();
    (status.code(), code)
}

#[tokio::test]
async fn every_read_is_an_index_scan() {
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

    let seats = kit::postgres::explain(&pool, catalog::repo::SEATS_OF_OPTION, 77)
        .await
        .expect("explain");
    assert!(
        seats.contains("Index Only Scan using seats_pkey"),
        "{seats}"
    );
    let options = kit::postgres::explain(&pool, catalog::repo::OPTIONS_OF_CONCERT, 7)
        .await
        .expect("explain");
    assert!(options.contains("concert_options_by_concert"), "{options}");
    assert!(
        !options.contains("Seq Scan on concert_options"),
        "{options}"
    );
    let concert = kit::postgres::explain(&pool, catalog::repo::CONCERT_BY_ID, 7_i64)
        .await
        .expect("explain");
    assert!(concert.contains("using concerts_pkey"), "{concert}");
    assert!(!concert.contains("Seq Scan"), "{concert}");
    let option = kit::postgres::explain(&pool, catalog::repo::OPTION_OF_SEAT_MAP, 77_i64)
        .await
        .expect("explain");
    assert!(option.contains("using concert_options_pkey"), "{option}");
    assert!(option.contains("using concerts_pkey"), "{option}");
    assert!(!option.contains("Seq Scan"), "{option}");
}
