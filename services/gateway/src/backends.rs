//! The gRPC clients of the backend services: one method per call the gateway makes, each
//! with the request's deadline, answering the message itself. Each backend's channel balances
//! per call over its replicas (`*_URL`: one URL, a list, or `dns:///name:port`), and a call
//! that failed on its way is sent again on another replica when that is safe (below).

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

    /// The backend deadline: the per-call timeout, or what is left of the HTTP request's
    /// deadline when that is sooner.
    pub fn deadline(&self) -> Duration {
        crate::deadline::clamp(self.deadline)
    }

    /// Each backend's name and channel, for readiness checks.
    pub fn channels(&self) -> [(&'static str, Channel); 3] {
        self.channels.clone()
    }
}

/// `backend.method(Request) -> Reply, retry;` for each call: a fresh client handle (a cheap
/// clone of the shared channel), the deadline, and the reply without its metadata. A call that
/// never reached a replica is sent again whatever it is; one cut off on its way (a replica
/// dying mid-call) only when `retry` says it is idempotent: `idempotent` (reads, and writes
/// whose repeat the store answers with the first result), `with_key` (when it carries an
/// Idempotency-Key), `once` (never). Attempts share the call's deadline (kit::grpc::retry).
macro_rules! calls {
    ($($backend:ident . $method:ident ( $request:ty ) -> $reply:ty , $retry:ident ;)*) => {
        impl Backends {
            $(
                pub async fn $method(&self, message: $request) -> Result<$reply, tonic::Status> {
                    let idempotent = idempotent!($retry, message);
                    kit::grpc::retrying(idempotent, self.deadline(), |left| {
                        let mut client = self.$backend.clone();
                        let request = kit::grpc::request(message.clone(), left);
                        async move { Ok(client.$method(request).await?.into_inner()) }
                    })
                    .await
                }
            )*
        }
    };
}

macro_rules! idempotent {
    (idempotent, $message:ident) => {
        true
    };
    (with_key, $message:ident) => {
        $message.idempotency_key.is_some()
    };
    (once, $message:ident) => {
        false
    };
}

calls! {
    // Asking again returns the same token (and counts as a poll).
    queue.issue_token(queue::IssueTokenRequest) -> queue::QueueEntry, idempotent;
    queue.get_status(queue::GetStatusRequest) -> queue::QueueEntry, idempotent;
    queue.validate_token(queue::ValidateTokenRequest) -> queue::ValidateTokenResponse, idempotent;
    // Its answer is not used: releasing twice frees the slot once.
    queue.release_token(queue::ReleaseTokenRequest) -> queue::ReleaseTokenResponse, idempotent;
    queue.list_rooms(queue::ListRoomsRequest) -> queue::ListRoomsResponse, idempotent;
    queue.get_room_history(queue::GetRoomHistoryRequest) -> queue::RoomHistory, idempotent;
    // Each change is logged with its actor: a repeat would log it twice.
    queue.update_room_settings(queue::UpdateRoomSettingsRequest) -> queue::RoomFigures, once;
    queue.list_setting_changes(queue::ListSettingChangesRequest) -> queue::ListSettingChangesResponse, idempotent;
    catalog.list_concerts(catalog::ListConcertsRequest) -> catalog::ListConcertsResponse, idempotent;
    catalog.get_concert(catalog::GetConcertRequest) -> catalog::Concert, idempotent;
    catalog.list_options(catalog::ListOptionsRequest) -> catalog::ListOptionsResponse, idempotent;
    catalog.get_seat_map(catalog::GetSeatMapRequest) -> catalog::SeatMap, idempotent;
    // The caller's own live hold of the seat is answered as it is (hold_seat, migration 0002):
    // a repeat returns the same reservation and never counts against the seat limit twice.
    reservation.hold_seat(reservation::HoldSeatRequest) -> reservation::Reservation, idempotent;
    reservation.get_reservation(reservation::GetReservationRequest) -> reservation::Reservation, idempotent;
    reservation.get_occupancy(reservation::GetOccupancyRequest) -> reservation::Occupancy, idempotent;
    reservation.count_taken(reservation::CountTakenRequest) -> reservation::CountTakenResponse, idempotent;
    reservation.count_held_and_sold(reservation::CountTakenRequest) -> reservation::CountHeldAndSoldResponse, idempotent;
    // Without a key a repeat could pay (refused as paid) or charge twice.
    reservation.pay(reservation::PayRequest) -> reservation::Payment, with_key;
    reservation.get_balance(reservation::GetBalanceRequest) -> reservation::Wallet, idempotent;
    reservation.charge_wallet(reservation::ChargeWalletRequest) -> reservation::Wallet, with_key;
}
