//! An OTLP/gRPC trace endpoint that answers every export OK and reads nothing of it: for runs
//! that measure what tracing costs the services, whose exports must go somewhere real (the
//! send is part of the cost) without a collector decoding them on the same cores.

use std::{
    convert::Infallible,
    future::{Ready, ready},
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use kit::grpc::raw::Raw;
use tonic::{
    Status,
    body::Body,
    server::{Grpc, NamedService, UnaryService},
};

/// Exports received (each a batch of spans), for the report.
#[derive(Clone, Default)]
pub struct SpanSink {
    exports: Arc<AtomicU64>,
}

impl SpanSink {
    /// Serves on `addr` until the process ends; returns the bound address.
    pub async fn start(&self, addr: SocketAddr) -> anyhow::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let server = tonic::transport::Server::builder()
            .add_service(self.clone())
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
        tokio::spawn(server);
        Ok(bound)
    }

    pub fn exports(&self) -> u64 {
        self.exports.load(Ordering::Relaxed)
    }
}

impl NamedService for SpanSink {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl tower::Service<http::Request<Body>> for SpanSink {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        self.exports.fetch_add(1, Ordering::Relaxed);
        Box::pin(async move { Ok(Grpc::new(Raw).unary(Answer, request).await) })
    }
}

/// Every export answered with an empty `ExportTraceServiceResponse` (all accepted).
struct Answer;

impl UnaryService<()> for Answer {
    type Response = Vec<u8>;
    type Future = Ready<Result<tonic::Response<Vec<u8>>, Status>>;

    fn call(&mut self, _: tonic::Request<()>) -> Self::Future {
        ready(Ok(tonic::Response::new(Vec::new())))
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, trace_service_client::TraceServiceClient,
    };

    use super::SpanSink;

    /// A real OTLP client (the generated one) gets an OK answer, and the export is counted.
    #[tokio::test]
    async fn an_otlp_export_is_answered_ok_and_counted() {
        let sink = SpanSink::default();
        let addr = sink.start(([127, 0, 0, 1], 0).into()).await.unwrap();
        let mut client = TraceServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let answer = client
            .export(ExportTraceServiceRequest {
                resource_spans: vec![Default::default()],
            })
            .await
            .unwrap()
            .into_inner();
        assert!(answer.partial_success.is_none());
        assert_eq!(sink.exports(), 1);
    }
}
