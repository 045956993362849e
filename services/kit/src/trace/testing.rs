//! For tests that assert on traces: a real OTLP/gRPC receiver on a port of its own, and this
//! process's span export pointed at it. The receiver runs on its own thread and runtime, so it
//! outlives any one test's runtime.

#![allow(clippy::expect_used)] // test support: a receiver that cannot start is the test failing

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::any_value,
};

use super::{ExportConfig, Exporter, Kind, Rule};

/// One span as the receiver got it.
#[derive(Clone, Debug)]
pub struct Collected {
    /// The resource's `service.name`.
    pub service: String,
    pub trace_id: u128,
    pub span_id: u64,
    /// 0 for a root.
    pub parent_span_id: u64,
    pub name: String,
    pub kind: Kind,
    /// The status description of a failed span.
    pub error: Option<String>,
    /// Every attribute, its value as text.
    pub attributes: Vec<(String, String)>,
}

impl Collected {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

type Spans = Arc<Mutex<Vec<Collected>>>;

/// An OTLP/gRPC trace receiver on 127.0.0.1.
pub struct Receiver {
    addr: SocketAddr,
    spans: Spans,
}

impl Receiver {
    pub fn start() -> Self {
        let spans = Spans::default();
        let (bound, addr) = std::sync::mpsc::channel();
        let service = Service {
            spans: spans.clone(),
        };
        std::thread::Builder::new()
            .name("otlp-receiver".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime");
                runtime.block_on(async move {
                    let (addr, incoming) = crate::grpc::bind(([127, 0, 0, 1], 0).into())
                        .await
                        .expect("a port");
                    let _ = bound.send(addr);
                    let _ = tonic::transport::Server::builder()
                        .add_service(TraceServiceServer::new(service))
                        .serve_with_incoming(incoming)
                        .await;
                });
            })
            .expect("the receiver's thread");
        let addr = addr
            .recv_timeout(Duration::from_secs(10))
            .expect("the receiver bound");
        Self { addr, spans }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<Collected> {
        self.spans
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// The process's receiver, with this process's spans exported to it every few milliseconds
/// under `rule` (the first call's rule stays: a process has one span pipeline).
pub fn collector(rule: Rule) -> &'static Receiver {
    static COLLECTOR: OnceLock<(Receiver, Exporter)> = OnceLock::new();
    &COLLECTOR
        .get_or_init(|| {
            let receiver = Receiver::start();
            let mut config = ExportConfig::new("tests", receiver.endpoint());
            config.schedule_delay = Duration::from_millis(5);
            config.max_queue = 1 << 20;
            config.rule = rule;
            crate::telemetry::install_logs();
            let exporter = Exporter::start(config).expect("span export started");
            (receiver, exporter)
        })
        .0
}

struct Service {
    spans: Spans,
}

#[tonic::async_trait]
impl TraceService for Service {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut batch = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let service = super::service_name(&resource_spans)
                .unwrap_or_default()
                .to_owned();
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                batch.push(Collected {
                    service: service.clone(),
                    trace_id: id(&span.trace_id).unwrap_or(0),
                    span_id: id(&span.span_id).map_or(0, |id| id as u64),
                    parent_span_id: id(&span.parent_span_id).map_or(0, |id| id as u64),
                    name: span.name,
                    kind: match span.kind {
                        2 => Kind::Server,
                        3 => Kind::Client,
                        _ => Kind::Internal,
                    },
                    error: span
                        .status
                        .filter(|status| status.code == 2)
                        .map(|status| status.message),
                    attributes: span
                        .attributes
                        .into_iter()
                        .filter_map(|kv| {
                            let value = text(kv.value?.value.as_ref()?)?;
                            Some((kv.key, value))
                        })
                        .collect(),
                });
            }
        }
        self.spans
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(batch);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// A big-endian id of up to 16 bytes.
fn id(bytes: &[u8]) -> Option<u128> {
    (!bytes.is_empty() && bytes.len() <= 16).then(|| {
        bytes
            .iter()
            .fold(0_u128, |id, byte| id << 8 | u128::from(*byte))
    })
}

fn text(value: &any_value::Value) -> Option<String> {
    match value {
        any_value::Value::StringValue(text) => Some(text.clone()),
        any_value::Value::IntValue(number) => Some(number.to_string()),
        any_value::Value::BoolValue(flag) => Some(flag.to_string()),
        any_value::Value::DoubleValue(number) => Some(number.to_string()),
        _ => None,
    }
}
