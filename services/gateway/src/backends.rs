//! The gRPC clients of the backend services, each call with a deadline.

use std::time::Duration;

use kit::grpc::TracedChannel as Channel;
use ticketing_proto::{
    catalog::v1::catalog_service_client::CatalogServiceClient,
    queue::v1::queue_service_client::QueueServiceClient,
    reservation::v1::reservation_service_client::ReservationServiceClient,
};

use crate::config::Config;

#[derive(Clone)]
pub struct Backends {
    pub queue: QueueServiceClient<Channel>,
    pub catalog: CatalogServiceClient<Channel>,
    pub reservation: ReservationServiceClient<Channel>,
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
