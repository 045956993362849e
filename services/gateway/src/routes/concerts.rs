//! Browsing: concerts, their concert options with free-seat counts, and an option's free seats.

use std::collections::HashSet;

use axum::extract::State;
use serde::Serialize;
use ticketing_proto::{catalog::v1 as catalog, reservation::v1 as reservation};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    error::ApiError,
    extract::PathParams,
    read_cache::{JsonBytes, Read},
    wire::{rfc3339, valid_id},
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(concerts))
        .routes(routes!(available_dates))
        .routes(routes!(available_seats))
        .routes(routes!(available_concert_options))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConcertView {
    id: i64,
    title: String,
    artist: String,
    description: String,
}

/// A concert option (one performance: a date at a venue) with its free-seat count.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OptionView {
    /// The concert option id (what available-seats and reserve take).
    id: i64,
    concert_id: i64,
    #[schema(required = true, format = DateTime)]
    starts_at: Option<String>,
    venue: String,
    /// Before it, reserve answers 409 `SALE_NOT_OPEN`.
    #[schema(required = true, format = DateTime)]
    sale_opens_at: Option<String>,
    total_seats: u32,
    available_seats: u32,
}

/// A free seat.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeatView {
    /// The seat's number within its option.
    id: i32,
    grade: String,
    /// In the currency's minor unit.
    price: i64,
}

crate::errors!(ConcertsErrors {});

/// Every concert.
#[utoipa::path(
    get,
    path = "/api/concert/get-concerts",
    tag = "concerts",
    operation_id = "getConcerts",
    security(()),
    responses(
        (status = 200, description = "Every concert", body = Vec<ConcertView>),
        ConcertsErrors,
    )
)]
async fn concerts(State(state): State<AppState>) -> Result<JsonBytes, ApiError> {
    state
        .reads
        .get_or_fetch(Read::Concerts, || async {
            let concerts = state
                .backends
                .list_concerts(catalog::ListConcertsRequest {})
                .await?
                .concerts;
            let views: Vec<ConcertView> = concerts
                .into_iter()
                .map(|c| ConcertView {
                    id: c.id,
                    title: c.title,
                    artist: c.artist,
                    description: c.description,
                })
                .collect();
            JsonBytes::of(&views)
        })
        .await
}

/// The concert's options with free-seat counts: two hops (options, then one count query for
/// all of them).
async fn options_with_counts(
    state: &AppState,
    concert_id: i64,
) -> Result<Vec<OptionView>, ApiError> {
    let options = state
        .backends
        .list_options(catalog::ListOptionsRequest { concert_id })
        .await?
        .options;
    if options.is_empty() {
        return Ok(Vec::new());
    }
    state
        .reads
        .note_options(concert_id, options.iter().map(|o| o.id).collect())
        .await;
    let taken = state
        .backends
        .count_taken(reservation::CountTakenRequest {
            concert_option_ids: options.iter().map(|o| o.id).collect(),
        })
        .await?
        .taken;
    Ok(options
        .into_iter()
        .map(|o| {
            let taken = taken.get(&o.id).copied().unwrap_or(0);
            OptionView {
                id: o.id,
                concert_id: o.concert_id,
                starts_at: rfc3339(o.starts_at_unix_ms),
                venue: o.venue,
                sale_opens_at: rfc3339(o.sale_opens_at_unix_ms),
                total_seats: o.seat_count,
                available_seats: o.seat_count.saturating_sub(taken),
            }
        })
        .collect())
}

crate::errors!(ConcertOptionsErrors {
    400 => ["INVALID_PATH", "INVALID_CONCERT_ID"],
    404 => ["CONCERT_NOT_FOUND"],
});

/// The concert options that still have free seats (the original clients call them dates).
#[utoipa::path(
    get,
    path = "/api/concert/{id}/available-dates",
    tag = "concerts",
    operation_id = "getAvailableDates",
    params(("id" = i64, Path, description = "The concert id", minimum = 1, maximum = 9_007_199_254_740_991_i64)),
    security(()),
    responses(
        (status = 200, description = "The concert's options that have a free seat", body = Vec<OptionView>),
        ConcertOptionsErrors,
    )
)]
async fn available_dates(
    State(state): State<AppState>,
    PathParams(concert_id): PathParams<i64>,
) -> Result<JsonBytes, ApiError> {
    let concert_id = valid_id(concert_id, "INVALID_CONCERT_ID", "concertId")?;
    state
        .reads
        .get_or_fetch(Read::AvailableDates(concert_id), || async {
            let mut options = options_with_counts(&state, concert_id).await?;
            options.retain(|o| o.available_seats > 0);
            JsonBytes::of(&options)
        })
        .await
}

/// Every option with its free-seat count, in one call.
#[utoipa::path(
    get,
    path = "/api/concert/concert/{concert_id}/available-concert-options",
    tag = "concerts",
    operation_id = "getAvailableConcertOptions",
    params(("concert_id" = i64, Path, description = "The concert id", minimum = 1, maximum = 9_007_199_254_740_991_i64)),
    security(()),
    responses(
        (status = 200, description = "Every option of the concert with its free-seat count", body = Vec<OptionView>),
        ConcertOptionsErrors,
    )
)]
async fn available_concert_options(
    State(state): State<AppState>,
    PathParams(concert_id): PathParams<i64>,
) -> Result<JsonBytes, ApiError> {
    let concert_id = valid_id(concert_id, "INVALID_CONCERT_ID", "concertId")?;
    state
        .reads
        .get_or_fetch(Read::ConcertOptions(concert_id), || async {
            JsonBytes::of(&options_with_counts(&state, concert_id).await?)
        })
        .await
}

crate::errors!(AvailableSeatsErrors {
    400 => ["INVALID_PATH", "INVALID_CONCERT_OPTION_ID"],
    404 => ["OPTION_NOT_FOUND"],
});

/// The option's seat map minus held and sold seats; both fetched in parallel (and the answer
/// kept for the read cache's bound; a hold through this gateway drops it).
#[utoipa::path(
    get,
    path = "/api/concert/{id}/available-seats",
    tag = "concerts",
    operation_id = "getAvailableSeats",
    params(("id" = i64, Path, description = "The concert option id", minimum = 1, maximum = 9_007_199_254_740_991_i64)),
    security(()),
    responses(
        (status = 200, description = "The option's free seats", body = Vec<SeatView>),
        AvailableSeatsErrors,
    )
)]
async fn available_seats(
    State(state): State<AppState>,
    PathParams(option_id): PathParams<i64>,
) -> Result<JsonBytes, ApiError> {
    let option_id = valid_id(option_id, "INVALID_CONCERT_OPTION_ID", "concertOptionId")?;
    state
        .reads
        .get_or_fetch(Read::AvailableSeats(option_id), || {
            free_seats(&state, option_id)
        })
        .await
}

async fn free_seats(state: &AppState, option_id: i64) -> Result<JsonBytes, ApiError> {
    let (map, occupancy) = tokio::join!(
        state.backends.get_seat_map(catalog::GetSeatMapRequest {
            concert_option_id: option_id,
        }),
        state
            .backends
            .get_occupancy(reservation::GetOccupancyRequest {
                concert_option_id: option_id,
            }),
    );
    let taken: HashSet<i32> = occupancy?.taken_seat_nos.into_iter().collect();
    let free: Vec<SeatView> = map?
        .seats
        .into_iter()
        .filter(|seat| !taken.contains(&seat.seat_no))
        .map(|seat| SeatView {
            id: seat.seat_no,
            grade: seat.grade,
            price: seat.price_minor,
        })
        .collect();
    JsonBytes::of(&free)
}
