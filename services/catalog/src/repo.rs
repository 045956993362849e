//! The catalog's queries, each one statement on its index. Every statement the repo runs is a
//! const here (listed in [`READS`]), so the plan tests explain exactly what runs.

use sqlx::PgPool;

use crate::{
    domain::{Concert, ConcertOption, Seat, SeatMap},
    error::CatalogError,
};

/// An option row of a concert left-joined to its options (all null for a concert without).
#[derive(sqlx::FromRow)]
struct JoinedOption {
    id: Option<i64>,
    starts_at_ms: Option<i64>,
    venue: Option<String>,
    sale_opens_at_ms: Option<i64>,
    seat_count: Option<i32>,
}

#[derive(Clone)]
pub struct CatalogRepo {
    pool: PgPool,
}

/// Epoch milliseconds of a timestamptz column, as every query returns instants.
macro_rules! epoch_ms {
    ($column:literal) => {
        concat!("(extract(epoch from ", $column, ") * 1000)::bigint")
    };
}

/// Every concert, by id (one ordered scan of the `concerts` primary key: no sort).
pub const ALL_CONCERTS: &str =
    "select id, title, artist, description, shared_room from concerts order by id";

/// The options of concert $1 by start time (one index range scan on
/// `concert_options_by_concert`; the join adds one primary-key probe of `concerts`, and the
/// concert's few options are sorted after it).
pub const OPTIONS_OF_CONCERT: &str = concat!(
    "select o.id, ",
    epoch_ms!("o.starts_at"),
    " as starts_at_ms, o.venue, ",
    epoch_ms!("o.sale_opens_at"),
    " as sale_opens_at_ms, o.seat_count from concerts c left join concert_options o on o.concert_id = c.id ",
    "where c.id = $1 order by o.starts_at, o.id"
);

/// Concert $1 (one primary-key probe of `concerts`).
pub const CONCERT_BY_ID: &str =
    "select id, title, artist, description, shared_room from concerts where id = $1";

/// What a seat map says about option $1 besides its seats: when it goes on sale, its concert
/// and that concert's room (one primary-key probe each of `concert_options` and `concerts`).
pub const OPTION_OF_SEAT_MAP: &str = concat!(
    "select ",
    epoch_ms!("o.sale_opens_at"),
    " as sale_opens_at_ms, o.concert_id, c.shared_room ",
    "from concert_options o join concerts c on c.id = o.concert_id where o.id = $1"
);

/// The seat map of option $1 (one index-only range scan on the seats primary key).
pub const SEATS_OF_OPTION: &str = "select concert_option_id, seat_no, grade, price_minor from seats \
     where concert_option_id = $1 order by seat_no";

/// Every statement the repo runs, by name: [`ALL_CONCERTS`] takes no parameter, the others one
/// id (`$1`, a bigint).
pub const READS: [(&str, &str); 5] = [
    ("ALL_CONCERTS", ALL_CONCERTS),
    ("CONCERT_BY_ID", CONCERT_BY_ID),
    ("OPTIONS_OF_CONCERT", OPTIONS_OF_CONCERT),
    ("OPTION_OF_SEAT_MAP", OPTION_OF_SEAT_MAP),
    ("SEATS_OF_OPTION", SEATS_OF_OPTION),
];

impl CatalogRepo {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn concerts(&self) -> Result<Vec<Concert>, CatalogError> {
        kit::trace::client(
            "SELECT concerts",
            kit::trace::db::POSTGRES_SELECT,
            async move { Ok(sqlx::query_as(ALL_CONCERTS).fetch_all(&self.pool).await?) },
        )
        .await
    }

    /// One concert; `ConcertNotFound` for an unknown one.
    pub async fn concert(&self, concert_id: i64) -> Result<Concert, CatalogError> {
        kit::trace::client(
            "SELECT concerts",
            kit::trace::db::POSTGRES_SELECT,
            async move {
                let concert: Option<Concert> = sqlx::query_as(CONCERT_BY_ID)
                    .bind(concert_id)
                    .fetch_optional(&self.pool)
                    .await?;
                concert.ok_or(CatalogError::ConcertNotFound)
            },
        )
        .await
    }

    /// The concert's options by start time; `ConcertNotFound` for an unknown concert.
    pub async fn options(&self, concert_id: i64) -> Result<Vec<ConcertOption>, CatalogError> {
        kit::trace::client(
            "SELECT concert_options",
            kit::trace::db::POSTGRES_SELECT,
            async move {
                // One statement answers both "does the concert exist" and "its options": the left join
                // yields one all-null option row for a concert without options.
                let rows: Vec<JoinedOption> = sqlx::query_as(OPTIONS_OF_CONCERT)
                    .bind(concert_id)
                    .fetch_all(&self.pool)
                    .await?;
                if rows.is_empty() {
                    return Err(CatalogError::ConcertNotFound);
                }
                Ok(rows
                    .into_iter()
                    .filter_map(|row| {
                        Some(ConcertOption {
                            id: row.id?,
                            concert_id,
                            starts_at_ms: row.starts_at_ms?,
                            venue: row.venue?,
                            sale_opens_at_ms: row.sale_opens_at_ms?,
                            seat_count: row.seat_count?,
                        })
                    })
                    .collect())
            },
        )
        .await
    }

    /// The option's whole seat map; `OptionNotFound` for an unknown option.
    pub async fn seat_map(&self, option_id: i64) -> Result<SeatMap, CatalogError> {
        kit::trace::client(
            "SELECT seats",
            kit::trace::db::POSTGRES_SELECT,
            async move {
                let option: Option<(i64, i64, bool)> = sqlx::query_as(OPTION_OF_SEAT_MAP)
                    .bind(option_id)
                    .fetch_optional(&self.pool)
                    .await?;
                let (sale_opens_at_ms, concert_id, shared_room) =
                    option.ok_or(CatalogError::OptionNotFound)?;
                let seats: Vec<Seat> = sqlx::query_as(SEATS_OF_OPTION)
                    .bind(option_id)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(SeatMap {
                    concert_option_id: option_id,
                    sale_opens_at_ms,
                    concert_id,
                    shared_room,
                    seats,
                })
            },
        )
        .await
    }
}
