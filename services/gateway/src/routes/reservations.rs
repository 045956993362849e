//! `POST /api/reserve` (303 See Other with the reservation, no Location) and
//! `GET /api/reservations/{id}`.

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use ticketing_proto::reservation::v1 as pb;

use crate::{
    AppState,
    error::ApiError,
    extract::{IdempotencyKey, JsonBody, PathParams},
    identity::Caller,
    routes::{admission::require_active_token, rfc3339, valid_id, valid_seat},
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/reserve", post(reserve))
        .route("/api/reservations/{reservation_id}", get(reservation))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReserveBody {
    #[serde(default)]
    token: String,
    concert_option_id: i64,
    seat_id: i64,
    /// Required in `trusted` mode; in `jwt` mode optional and, if there, the caller's.
    #[serde(default)]
    user_id: Option<i64>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct ReservationView {
    reservation_id: i64,
    user_id: i64,
    concert_option_id: i64,
    seat_id: i32,
    status: &'static str,
    price: i64,
    grade: String,
    created_at: Option<String>,
    expires_at: Option<String>,
}

impl From<pb::Reservation> for ReservationView {
    fn from(r: pb::Reservation) -> Self {
        let status = match r.status() {
            pb::ReservationStatus::Held => "HELD",
            pb::ReservationStatus::Confirmed => "CONFIRMED",
            pb::ReservationStatus::Expired => "EXPIRED",
            pb::ReservationStatus::Cancelled => "CANCELLED",
            pb::ReservationStatus::Unspecified => "UNKNOWN",
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
    let reservation = state
        .backends
        .hold_seat(pb::HoldSeatRequest {
            user_id,
            concert_option_id,
            seat_no,
            idempotency_key,
            admitted_by: Some(admitted_by),
        })
        .await?;
    // The original clients look for the 303 itself; there is deliberately no Location header.
    Ok((
        StatusCode::SEE_OTHER,
        Json(ReservationView::from(reservation)),
    )
        .into_response())
}

/// One reservation. In `jwt` mode someone else's is 404, as if it did not exist: sequential
/// ids must not reveal who booked what.
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
