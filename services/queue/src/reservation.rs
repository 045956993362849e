//! The admitter's view of the reservation service: the seats left per concert (a room with no
//! free seat stops admitting) and how its holds fare (the pace drops while they are slow).

use std::{collections::HashMap, time::Duration};

use kit::grpc::TracedChannel;
use ticketing_proto::reservation::v1::{
    self as pb, reservation_service_client::ReservationServiceClient,
};

use crate::{domain::RoomSeats, error::QueueError, outflow::HoldLoad};

/// What the reservation service said at one tick.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outlook {
    /// By concert id; a concert the catalog does not know is absent.
    pub seats: HashMap<i64, RoomSeats>,
    pub holds: HoldLoad,
}

/// A client of the reservation service's `GetOutlook`, every call under `deadline`.
#[derive(Clone)]
pub struct Reservation {
    client: ReservationServiceClient<TracedChannel>,
    deadline: Duration,
}

impl Reservation {
    /// A lazily connecting client: the queue starts before the reservation service does.
    pub fn connect(url: &str, deadline: Duration) -> Result<Self, QueueError> {
        let timeouts = kit::grpc::ChannelTimeouts {
            connect: deadline,
            request: deadline,
        };
        let channel = kit::grpc::channel(url, timeouts).map_err(|error| {
            QueueError::Protocol(format!("bad reservation URL {url:?}: {error}"))
        })?;
        Ok(Self {
            client: ReservationServiceClient::new(channel),
            deadline,
        })
    }

    /// The seats of `concerts` and the service's hold load now: a read, so asked again of
    /// another replica when one is cut off on its way, within the one deadline.
    pub async fn outlook(&self, concerts: Vec<i64>) -> Result<Outlook, tonic::Status> {
        let request = pb::GetOutlookRequest {
            concert_ids: concerts,
        };
        let ask = kit::grpc::retrying(true, self.deadline, |left| {
            let mut client = self.client.clone();
            let request = kit::grpc::request(request.clone(), left);
            async move { Ok(client.get_outlook(request).await?.into_inner()) }
        });
        let answer = tokio::time::timeout(self.deadline, ask)
            .await
            .map_err(|_| tonic::Status::deadline_exceeded("reservation outlook"))??;
        Ok(answer.into())
    }
}

impl From<pb::Outlook> for Outlook {
    fn from(outlook: pb::Outlook) -> Self {
        let holds = outlook.holds.unwrap_or_default();
        Self {
            seats: outlook
                .seats
                .into_iter()
                .map(|(concert, seats)| {
                    let seats = RoomSeats {
                        free: seats.free,
                        held: seats.held,
                        sold: seats.sold,
                    };
                    (concert, seats)
                })
                .collect(),
            holds: HoldLoad {
                in_flight: holds.in_flight,
                latency_ms: holds.latency_ms,
                completed: holds.completed,
            },
        }
    }
}
