//! The gRPC clients of the backend services: one method per call the gateway makes, each
//! with the request's deadline, answering the message itself.

use std::time::Duration;

use kit::grpc::TracedChannel as Channel;
use ticketing_proto::{
    catalog::v1::{self as catalog, catalog_service_client::CatalogServiceClient},
    queue::v1::{self as queue, queue_service_client::QueueServiceClient},
    reservation::v1::{self as reservation, reservation_service_client::ReservationServiceClient},
};

use crate::config::Config;

#[derive(Clone)]
pub struct Backends {
    queue: QueueServiceClient<Channel>,
    catalog: CatalogServiceClient<Channel>,
    reservation: ReservationServiceClient<Channel>,
    channels: [(&'static str, Channel); 3],
    deadline: Duration,
}

impl Backends {
    pub fn connect(config: &Config) -> anyhow::Result<Self> {
        let timeouts = config.grpc_timeouts();
        let queue = kit::grpc::channel(&config.queue_url, timeouts)?;
        let catalog = kit::grpc::channel(&config.catalog_url, timeouts)?;
        let reservation = kit::grpc::channel(&config.reservation_url, timeouts)?;
        Ok(Self {
            queue: QueueServiceClient::new(queue.clone()),
            catalog: CatalogServiceClient::new(catalog.clone()),
            reservation: ReservationServiceClient::new(reservation.clone()),
            channels: [
                ("queue", queue),
                ("catalog", catalog),
                ("reservation", reservation),
            ],
            deadline: timeouts.request,
        })
    }

    /// A request carrying the backend deadline as `grpc-timeout`: the per-call timeout, or
    /// what is left of the HTTP request's deadline when that is sooner.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        kit::grpc::request(message, crate::deadline::clamp(self.deadline))
    }

    /// Each backend's name and channel, for readiness checks.
    pub fn channels(&self) -> [(&'static str, Channel); 3] {
        self.channels.clone()
    }
}

/// `backend.method(Request) -> Reply` for each call: a fresh client handle (a cheap clone of
/// the shared channel), the deadline, and the reply without its metadata.
macro_rules! calls {
    ($($backend:ident . $method:ident ( $request:ty ) -> $reply:ty ;)*) => {
        impl Backends {
            $(
                pub async fn $method(&self, message: $request) -> Result<$reply, tonic::Status> {
                    let reply = self.$backend.clone().$method(self.request(message)).await?;
                    Ok(reply.into_inner())
                }
            )*
        }
    };
}

calls! {
    queue.issue_token(queue::IssueTokenRequest) -> queue::QueueEntry;
    queue.get_status(queue::GetStatusRequest) -> queue::QueueEntry;
    queue.validate_token(queue::ValidateTokenRequest) -> queue::ValidateTokenResponse;
    queue.release_token(queue::ReleaseTokenRequest) -> queue::ReleaseTokenResponse;
    queue.list_rooms(queue::ListRoomsRequest) -> queue::ListRoomsResponse;
    queue.get_room_history(queue::GetRoomHistoryRequest) -> queue::RoomHistory;
    queue.update_room_settings(queue::UpdateRoomSettingsRequest) -> queue::RoomFigures;
    queue.list_setting_changes(queue::ListSettingChangesRequest) -> queue::ListSettingChangesResponse;
    catalog.list_concerts(catalog::ListConcertsRequest) -> catalog::ListConcertsResponse;
    catalog.get_concert(catalog::GetConcertRequest) -> catalog::Concert;
    catalog.list_options(catalog::ListOptionsRequest) -> catalog::ListOptionsResponse;
    catalog.get_seat_map(catalog::GetSeatMapRequest) -> catalog::SeatMap;
    reservation.hold_seat(reservation::HoldSeatRequest) -> reservation::Reservation;
    reservation.get_reservation(reservation::GetReservationRequest) -> reservation::Reservation;
    reservation.get_occupancy(reservation::GetOccupancyRequest) -> reservation::Occupancy;
    reservation.count_taken(reservation::CountTakenRequest) -> reservation::CountTakenResponse;
    reservation.count_held_and_sold(reservation::CountTakenRequest) -> reservation::CountHeldAndSoldResponse;
    reservation.pay(reservation::PayRequest) -> reservation::Payment;
    reservation.get_balance(reservation::GetBalanceRequest) -> reservation::Wallet;
    reservation.charge_wallet(reservation::ChargeWalletRequest) -> reservation::Wallet;
}
