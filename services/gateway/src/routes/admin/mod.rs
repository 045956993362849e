//! The operator's API: every room's line and sales, the settings that steer admission, and who
//! changed them. Operators only ([`Admin`]). Settings live in the queue's Redis, so a change
//! reaches every replica at its next admission step.

pub mod patch;
pub mod views;

use std::collections::HashMap;

use axum::{Json, extract::State, http::StatusCode};
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use ticketing_proto::{catalog::v1 as catalog, queue::v1 as queue, reservation::v1 as reservation};
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    error::ApiError,
    extract::{JsonBody, PathParams, QueryParams},
    identity::admin::Admin,
};
use patch::SettingsPatch;
use views::{
    ChangesView, OptionSalesView, RevokedView, RoomHistoryView, RoomName, RoomView, RoomsView,
    RoutesHistoryView,
};

/// Catalog calls in flight at once while gathering every concert's options.
const OPTION_LOOKUPS_IN_FLIGHT: usize = 8;
/// Options per count call (the reservation service's bound).
const OPTIONS_PER_COUNT: usize = 1_000;
/// The change log's page when `limit` is not given, and its largest.
const DEFAULT_CHANGES: u32 = 100;
const MAX_CHANGES: u32 = 1_000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_rooms))
        .routes(routes!(update_room))
        .routes(routes!(room_history))
        .routes(routes!(list_changes))
        .routes(routes!(routes_history))
        .routes(routes!(revoke_token))
}

/// Who may not use the operator's API, on each of its routes.
const ADMIN_AUTH: &[(u16, &[&str])] = &[
    (401, &["AUTH_REQUIRED", "AUTH_INVALID"]),
    (403, &["ADMIN_ROLE_REQUIRED", "ADMIN_CLOSED"]),
];

crate::errors!(ListRoomsErrors + ADMIN_AUTH {});

crate::errors!(UpdateRoomErrors + ADMIN_AUTH {
    400 => ["INVALID_PATH", "INVALID_ROOM", "INVALID_JSON", "INVALID_BODY", "INVALID_ROOM_SETTINGS"],
    404 => ["ROOM_NOT_FOUND"],
    409 => ["INVALID_ROOM_SETTINGS", "ROOM_SETTINGS_CONTENDED"],
});

crate::errors!(RoomHistoryErrors + ADMIN_AUTH {
    400 => ["INVALID_PATH", "INVALID_ROOM"],
    404 => ["ROOM_NOT_FOUND"],
});

crate::errors!(ChangesErrors + ADMIN_AUTH {
    400 => ["INVALID_QUERY", "INVALID_LIMIT"],
});

/// Every room with its figures, settings and the sales of the concerts it admits to.
#[utoipa::path(
    get,
    path = "/admin/rooms",
    tag = "admin",
    operation_id = "listRooms",
    security(("adminToken" = []), ("bearerJwt" = [])),
    responses(
        (status = 200, description = "Every room, and this replica's routes", body = RoomsView),
        ListRoomsErrors,
    )
)]
async fn list_rooms(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<RoomsView>, ApiError> {
    Ok(Json(RoomsView {
        rooms: rooms(&state).await?,
        routes: state.metrics.recent().into_iter().map(Into::into).collect(),
    }))
}

crate::errors!(RoutesHistoryErrors + ADMIN_AUTH {});

/// This replica's routes, one sample per 5 s over the last five minutes.
#[utoipa::path(
    get,
    path = "/admin/routes/history",
    tag = "admin",
    operation_id = "getRoutesHistory",
    security(("adminToken" = []), ("bearerJwt" = [])),
    responses(
        (status = 200, description = "Each route's samples, oldest first", body = RoutesHistoryView),
        RoutesHistoryErrors,
    )
)]
async fn routes_history(State(state): State<AppState>, _admin: Admin) -> Json<RoutesHistoryView> {
    Json(state.metrics.history().into())
}

/// Changes a room's settings, or schedules its opening (`prequeueOpensAt`, `opensAt`; `null`
/// clears one); answers the room as the list shows it.
#[utoipa::path(
    patch,
    path = "/admin/rooms/{room}",
    tag = "admin",
    operation_id = "updateRoom",
    params(("room" = String, Path, description = "`default`, or `concert-{id}` for a concert's own room", pattern = "^(default|concert-[1-9][0-9]{0,14})$")),
    request_body = SettingsPatch,
    security(("adminToken" = []), ("bearerJwt" = [])),
    responses(
        (status = 200, description = "The room with its new settings", body = RoomView),
        UpdateRoomErrors,
    )
)]
async fn update_room(
    State(state): State<AppState>,
    admin: Admin,
    PathParams(room): PathParams<String>,
    JsonBody(patch): JsonBody<SettingsPatch>,
) -> Result<Json<RoomView>, ApiError> {
    let (room, own_concert) = existing_room(&state, &room).await?;
    let request = patch.into_request(room, admin.actor)?;
    let figures = state
        .backends
        .update_room_settings(request)
        .await
        .map_err(settings_conflict)?;
    // The queue answered the room's figures; only its own concerts' sales are left to count.
    let title = own_concert.as_ref().map(|concert| concert.title.clone());
    let concerts = match own_concert {
        Some(concert) => vec![concert],
        None => {
            let mut all = state
                .backends
                .list_concerts(catalog::ListConcertsRequest {})
                .await?
                .concerts;
            all.retain(|concert| concert.shared_room);
            all
        }
    };
    let mut view = RoomView::new(figures, title);
    view.options = option_sales(&state, &concerts).await?;
    Ok(Json(view))
}

/// A room's samples of the last minutes, with rates between consecutive samples.
#[utoipa::path(
    get,
    path = "/admin/rooms/{room}/history",
    tag = "admin",
    operation_id = "getRoomHistory",
    params(("room" = String, Path, description = "`default`, or `concert-{id}` for a concert's own room", pattern = "^(default|concert-[1-9][0-9]{0,14})$")),
    security(("adminToken" = []), ("bearerJwt" = [])),
    responses(
        (status = 200, description = "The room's samples, oldest first", body = RoomHistoryView),
        RoomHistoryErrors,
    )
)]
async fn room_history(
    State(state): State<AppState>,
    _admin: Admin,
    PathParams(room): PathParams<String>,
) -> Result<Json<RoomHistoryView>, ApiError> {
    let (room, _) = existing_room(&state, &room).await?;
    let history = state
        .backends
        .get_room_history(queue::GetRoomHistoryRequest { concert_id: room.0 })
        .await?;
    Ok(Json(history.into()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ChangesParams {
    /// How many changes at most (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// The latest settings changes, newest first.
#[utoipa::path(
    get,
    path = "/admin/changes",
    tag = "admin",
    operation_id = "listChanges",
    params(ChangesParams),
    security(("adminToken" = []), ("bearerJwt" = [])),
    responses(
        (status = 200, description = "The change log, newest first", body = ChangesView),
        ChangesErrors,
    )
)]
async fn list_changes(
    State(state): State<AppState>,
    _admin: Admin,
    QueryParams(params): QueryParams<ChangesParams>,
) -> Result<Json<ChangesView>, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_CHANGES);
    if !(1..=MAX_CHANGES).contains(&limit) {
        return Err(ApiError::bad_request(
            "INVALID_LIMIT",
            format!("limit must be between 1 and {MAX_CHANGES}"),
        ));
    }
    let changes = state
        .backends
        .list_setting_changes(queue::ListSettingChangesRequest { limit })
        .await?
        .changes;
    Ok(Json(ChangesView {
        changes: changes.into_iter().map(Into::into).collect(),
    }))
}

crate::errors!(RevokeTokenErrors + ADMIN_AUTH {
    400 => ["INVALID_PATH", "INVALID_TOKEN"],
});

/// Revokes a queue token (abuse): its place in line or its admission ends at once, and its next
/// call is answered like any unknown token's (401 `TOKEN_NOT_FOUND`). Revoking a token that is
/// already gone answers `revoked: false`, so a retry is harmless.
#[utoipa::path(
    delete,
    path = "/admin/tokens/{token}",
    tag = "admin",
    operation_id = "revokeToken",
    params(("token" = String, Path, description = "The queue token to revoke", format = "uuid")),
    security(("adminToken" = []), ("bearerJwt" = [])),
    responses(
        (status = 200, description = "Whether the token was live until now", body = RevokedView),
        RevokeTokenErrors,
    )
)]
async fn revoke_token(
    State(state): State<AppState>,
    admin: Admin,
    PathParams(token): PathParams<String>,
) -> Result<Json<RevokedView>, ApiError> {
    let token = uuid::Uuid::parse_str(&token)
        .map_err(|_| ApiError::bad_request("INVALID_TOKEN", "a queue token is a UUID"))?
        .to_string();
    let revoked = state
        .backends
        .release_token(queue::ReleaseTokenRequest {
            token: token.clone(),
        })
        .await?
        .released;
    tracing::info!(actor = %admin.actor, %token, revoked, "queue token revoked by an operator");
    Ok(Json(RevokedView { token, revoked }))
}

/// `room` parsed, and known: the default room, or the own room of a concert that has one.
/// With a concert's own room, that concert.
async fn existing_room(
    state: &AppState,
    room: &str,
) -> Result<(RoomName, Option<catalog::Concert>), ApiError> {
    let room = RoomName::parse(room)?;
    let Some(concert_id) = room.0 else {
        return Ok((room, None));
    };
    match state
        .backends
        .get_concert(catalog::GetConcertRequest { concert_id })
        .await
    {
        Ok(concert) if !concert.shared_room => Ok((room, Some(concert))),
        Ok(_) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "ROOM_NOT_FOUND",
            format!("concert {concert_id} waits in the default room"),
        )),
        Err(status) if status.code() == tonic::Code::NotFound => Err(room_not_found(room)),
        Err(status) => Err(status.into()),
    }
}

/// The patch alone passed its checks, so a rule the queue still finds broken is broken by the
/// patch together with the room's other settings (a rate of 0 while the cap is 0, an
/// `opensAt` not after the room's `prequeueOpensAt`): a conflict with the room's state, 409,
/// not a malformed request.
fn settings_conflict(status: tonic::Status) -> ApiError {
    let error = ApiError::from(status);
    if error.code == "INVALID_ROOM_SETTINGS" {
        ApiError {
            status: StatusCode::CONFLICT,
            ..error
        }
    } else {
        error
    }
}

fn room_not_found(room: RoomName) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "ROOM_NOT_FOUND",
        format!("no room {room}"),
    )
}

/// Every room the queue reports (the default room, concerts' own rooms, any live one), each
/// with the options of the concerts it admits to and their free / held / sold seats.
async fn rooms(state: &AppState) -> Result<Vec<RoomView>, ApiError> {
    let concerts = state
        .backends
        .list_concerts(catalog::ListConcertsRequest {})
        .await?
        .concerts;
    let own_rooms = concerts
        .iter()
        .filter(|concert| !concert.shared_room)
        .map(|concert| concert.id)
        .collect();
    let (figures, options) = tokio::try_join!(
        async {
            let request = queue::ListRoomsRequest {
                concert_ids: own_rooms,
            };
            Ok::<_, ApiError>(state.backends.list_rooms(request).await?.rooms)
        },
        option_sales(state, &concerts),
    )?;
    let room_of: HashMap<i64, (RoomName, &str)> = concerts
        .iter()
        .map(|concert| {
            let room = RoomName((!concert.shared_room).then_some(concert.id));
            (concert.id, (room, concert.title.as_str()))
        })
        .collect();
    let mut views: Vec<RoomView> = figures
        .into_iter()
        .map(|figures| {
            let title = figures
                .concert_id
                .and_then(|id| room_of.get(&id))
                .map(|(_, title)| (*title).to_owned());
            RoomView::new(figures, title)
        })
        .collect();
    for option in options {
        let Some((room, _)) = room_of.get(&option.concert_id) else {
            continue;
        };
        if let Some(view) = views.iter_mut().find(|view| view.room == *room) {
            view.options.push(option);
        }
    }
    Ok(views)
}

/// Every option of `concerts` with its held and sold counts.
async fn option_sales(
    state: &AppState,
    concerts: &[catalog::Concert],
) -> Result<Vec<OptionSalesView>, ApiError> {
    // Owned ids and a cloned client per lookup: the futures borrow nothing, so the handler's
    // future stays Send for any lifetime axum asks of it.
    let lookups: Vec<_> = concerts
        .iter()
        .map(|concert| {
            let backends = state.backends.clone();
            let request = catalog::ListOptionsRequest {
                concert_id: concert.id,
            };
            async move { Ok::<_, ApiError>(backends.list_options(request).await?.options) }
        })
        .collect();
    let options: Vec<catalog::ConcertOption> = futures::stream::iter(lookups)
        .buffered(OPTION_LOOKUPS_IN_FLIGHT)
        .try_concat()
        .await?;
    let mut counts = HashMap::new();
    for chunk in options.chunks(OPTIONS_PER_COUNT) {
        let request = reservation::CountTakenRequest {
            concert_option_ids: chunk.iter().map(|option| option.id).collect(),
        };
        counts.extend(state.backends.count_held_and_sold(request).await?.options);
    }
    Ok(options
        .into_iter()
        .map(|option| {
            let counts = counts.get(&option.id).copied().unwrap_or_default();
            OptionSalesView::new(option, counts.held, counts.sold)
        })
        .collect())
}
