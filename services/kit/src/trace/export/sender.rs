//! The OTLP/gRPC client of the export thread, and what it says when spans are lost.

use std::time::Duration;

use tonic::transport::Channel;

use super::{super::otlp, super::record::Recorded, config::ExportConfig};

/// The OTLP client and what it sends besides spans.
pub(super) struct Sender {
    grpc: tonic::client::Grpc<Channel>,
    preamble: otlp::Preamble,
    headers: Vec<(
        tonic::metadata::MetadataKey<tonic::metadata::Ascii>,
        tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    )>,
    timeout: Duration,
    pub(super) problems: Problems,
}

impl Sender {
    pub(super) fn new(channel: Channel, config: &ExportConfig) -> Self {
        let headers = config
            .headers
            .iter()
            .filter_map(|(key, value)| Some((key.parse().ok()?, value.parse().ok()?)))
            .collect();
        Self {
            grpc: tonic::client::Grpc::new(channel),
            preamble: otlp::Preamble::new(&config.resource, "kit"),
            headers,
            timeout: config.timeout,
            problems: Problems::default(),
        }
    }

    pub(super) async fn send(&mut self, batch: Vec<Recorded>) {
        let count = batch.len() as u64;
        let mut body = Vec::new();
        otlp::export_request(&self.preamble, &batch, &mut body);
        drop(batch);
        let mut request = tonic::Request::new(body);
        request.set_timeout(self.timeout);
        for (key, value) in &self.headers {
            request.metadata_mut().insert(key.clone(), value.clone());
        }
        let path = http::uri::PathAndQuery::from_static(otlp::EXPORT_PATH);
        let sent = match self.grpc.ready().await {
            Ok(()) => self
                .grpc
                .unary(request, path, crate::grpc::raw::Raw)
                .await
                .map(|_| ()),
            Err(error) => Err(tonic::Status::unavailable(error.to_string())),
        };
        if let Err(status) = sent {
            self.problems.failed += count;
            self.problems.last = Some(status.message().to_owned());
        }
    }
}

/// Spans lost since the last report, said at most every ten seconds on stderr (a log line
/// would go through the subscriber of the process being traced).
#[derive(Default)]
pub(super) struct Problems {
    pub(super) dropped: u64,
    failed: u64,
    last: Option<String>,
    said: Option<std::time::Instant>,
}

impl Problems {
    pub(super) fn report(&mut self) {
        if self.dropped == 0 && self.failed == 0 {
            return;
        }
        let now = std::time::Instant::now();
        if self
            .said
            .is_some_and(|said| now.duration_since(said) < Duration::from_secs(10))
        {
            return;
        }
        eprintln!(
            "telemetry: {} spans dropped (queue full), {} not accepted by the collector{}",
            self.dropped,
            self.failed,
            self.last
                .as_deref()
                .map(|last| format!(" (last: {last})"))
                .unwrap_or_default()
        );
        *self = Self {
            said: Some(now),
            ..Self::default()
        };
    }
}
