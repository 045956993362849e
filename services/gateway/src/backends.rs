//! The gRPC clients of the backend services, each call with a deadline.

use std::time::Duration;

use ticketing_proto::queue::v1::queue_service_client::QueueServiceClient;
use tonic::transport::Channel;

use crate::config::Config;

#[derive(Clone)]
pub struct Backends {
    pub queue: QueueServiceClient<Channel>,
    queue_channel: Channel,
    deadline: Duration,
}

impl Backends {
    pub fn connect(config: &Config) -> anyhow::Result<Self> {
        let timeouts = config.grpc_timeouts();
        let queue_channel = kit::grpc::channel(&config.queue_url, timeouts)?;
        Ok(Self {
            queue: QueueServiceClient::new(queue_channel.clone()),
            queue_channel,
            deadline: timeouts.request,
        })
    }

    /// A request carrying the backend deadline as `grpc-timeout`.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        kit::grpc::request(message, self.deadline)
    }

    /// Each backend's name and channel, for readiness checks.
    pub fn channels(&self) -> [(&'static str, Channel); 1] {
        [("queue", self.queue_channel.clone())]
    }

    pub fn deadline(&self) -> Duration {
        self.deadline
    }
}
