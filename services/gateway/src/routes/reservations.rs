//! `POST /api/reserve` (303 See Other with the reservation, no Location) and
//! `GET /api/reservations/{id}`.

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use ticketing_proto::reservation::v1 as pb;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    error::ApiError,
    extract::{IdempotencyKey, JsonBody, PathParams},
    identity::Caller,
    routes::admission::require_active_token,
    wire::{rfc3339, valid_id, valid_seat},
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(reserve))
        .routes(routes!(reservation))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReserveBody {
    /// An ACTIVE queue token of the concert's room.
    #[serde(default)]
    #[schema(required = true, format = Uuid)]
    token: String,
    #[schema(minimum = 1, maximum = 9_007_199_254_740_991_i64)]
    concert_option_id: i64,
    /// The seat's number within the option.
    #[schema(minimum = 1, maximum = 2_147_483_647)]
    seat_id: i64,
    /// Required in `trusted` mode (as the original clients send it; the document of a `jwt`
    /// gateway makes it optional); in `jwt` mode, if there, the caller's (else 403 `USER_MISMATCH`).
    #[serde(default)]
    #[schema(
        required = true,
        nullable = false,
        minimum = 1,
        maximum = 9_007_199_254_740_991_i64
    )]
    user_id: Option<i64>,
}

/// Where a reservation stands.
#[derive(Serialize, Debug, Clone, Copy, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReservationStatus {
    /// The seat is held until `expiresAt`: pay before then.
    Held,
    /// Paid.
    Confirmed,
    /// The hold ran out unpaid.
    Expired,
    Cancelled,
    Unknown,
}

/// A hold on a seat, or the seat bought.
#[derive(Serialize, Debug, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationView {
    reservation_id: i64,
    user_id: i64,
    concert_option_id: i64,
    seat_id: i32,
    status: ReservationStatus,
    /// In the currency's minor unit.
    price: i64,
    grade: String,
    #[schema(required = true, format = DateTime)]
    created_at: Option<String>,
    /// When an unpaid hold runs out.
    #[schema(required = true, format = DateTime)]
    expires_at: Option<String>,
}

impl From<pb::Reservation> for ReservationView {
    fn from(r: pb::Reservation) -> Self {
        let status = match r.status() {
            pb::ReservationStatus::Held => ReservationStatus::Held,
            pb::ReservationStatus::Confirmed => ReservationStatus::Confirmed,
            pb::ReservationStatus::Expired => ReservationStatus::Expired,
            pb::ReservationStatus::Cancelled => ReservationStatus::Cancelled,
            pb::ReservationStatus::Unspecified => ReservationStatus::Unknown,
        };
        Self {
            reservation_id: r.id,
            user_id: r.user_id,
            concert_option_id: r.concert_option_id,
            seat_id: r.seat_no,
            status,
            price: r.price_minor,
            grade: r.grade,
            created_at: rfc3339(r.created_at_unix_ms),
            expires_at: rfc3339(r.expires_at_unix_ms),
        }
    }
}

crate::errors!(ReserveErrors {
    400 => ["INVALID_JSON", "INVALID_BODY", "INVALID_USER_ID", "INVALID_CONCERT_OPTION_ID",
            "INVALID_SEAT_ID", "INVALID_IDEMPOTENCY_KEY", "SEAT_TAKEN"],
    401 => ["AUTH_REQUIRED", "TOKEN_MISSING", "TOKEN_NOT_FOUND", "TOKEN_EXPIRED"],
    403 => ["USER_MISMATCH", "TOKEN_NOT_ACTIVE", "TOKEN_USER_MISMATCH", "TOKEN_WRONG_ROOM"],
    404 => ["OPTION_NOT_FOUND", "SEAT_NOT_FOUND"],
    409 => ["SALE_NOT_OPEN", "SEAT_LIMIT_REACHED", "IDEMPOTENCY_KEY_REUSED"],
});

/// Holds a seat. Succeeds with **303 See Other** and the reservation as the body, with no
/// Location header: the original clients look for the 303 itself. The caller's own live hold of
/// the seat is answered again (a retry after a timeout).
#[utoipa::path(
    post,
    path = "/api/reserve",
    tag = "reservations",
    operation_id = "reserve",
    request_body = ReserveBody,
    params(crate::openapi::parameters::IdempotencyKeyHeader),
    security((), ("bearerJwt" = [])),
    responses(
        (status = 303, description = "The seat is held: the reservation (no Location header)", body = ReservationView),
        ReserveErrors,
    )
)]
async fn reserve(
    State(state): State<AppState>,
    caller: Caller,
    IdempotencyKey(idempotency_key): IdempotencyKey,
    JsonBody(body): JsonBody<ReserveBody>,
) -> Result<Response, ApiError> {
    let user_id = caller.acting_user(body.user_id, "userId")?;
    let concert_option_id = valid_id(
        body.concert_option_id,
        "INVALID_CONCERT_OPTION_ID",
        "concertOptionId",
    )?;
    let seat_no = valid_seat(body.seat_id)?;
    let admitted_by = require_active_token(&state, &body.token, user_id).await?;
    let held = state
        .backends
        .hold_seat(pb::HoldSeatRequest {
            user_id,
            concert_option_id,
            seat_no,
            idempotency_key,
            admitted_by: Some(admitted_by),
        })
        .await;
    // Held, or refused as taken: either way the free seats this gateway keeps for the option
    // are out of date, and the caller's next look must not show the seat.
    state.reads.seat_changed(concert_option_id).await;
    let reservation = held?;
    // The original clients look for the 303 itself; there is deliberately no Location header.
    Ok((
        StatusCode::SEE_OTHER,
        Json(ReservationView::from(reservation)),
    )
        .into_response())
}

crate::errors!(ReservationErrors {
    400 => ["INVALID_PATH", "INVALID_RESERVATION_ID"],
    401 => ["AUTH_REQUIRED"],
    404 => ["RESERVATION_NOT_FOUND"],
});

/// One reservation. In `jwt` mode someone else's is 404, as if it did not exist: sequential
/// ids must not reveal who booked what.
#[utoipa::path(
    get,
    path = "/api/reservations/{reservation_id}",
    tag = "reservations",
    operation_id = "getReservation",
    params(("reservation_id" = i64, Path, description = "The reservation id", minimum = 1, maximum = 9_007_199_254_740_991_i64)),
    security((), ("bearerJwt" = [])),
    responses(
        (status = 200, description = "The reservation", body = ReservationView),
        ReservationErrors,
    )
)]
async fn reservation(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(reservation_id): PathParams<i64>,
) -> Result<Json<ReservationView>, ApiError> {
    let reservation_id = valid_id(reservation_id, "INVALID_RESERVATION_ID", "reservationId")?;
    let reservation = state
        .backends
        .get_reservation(pb::GetReservationRequest { reservation_id })
        .await?;
    if !caller.may_see(reservation.user_id) {
        return Err(reservation_not_found());
    }
    Ok(Json(reservation.into()))
}

pub fn reservation_not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "RESERVATION_NOT_FOUND",
        "no such reservation",
    )
}
