//! A pooled HTTP/1.1 keep-alive client that returns status and JSON, with a deadline per call.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::{
    client::legacy::{Client as Hyper, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::Value;

#[derive(Clone)]
pub struct Client {
    base: String,
    inner: Hyper<HttpConnector, Full<Bytes>>,
}

pub struct Reply {
    pub status: u16,
    pub json: Value,
}

impl Reply {
    /// The contract's stable error code, when the body carries one.
    pub fn code(&self) -> Option<&str> {
        self.json["code"].as_str()
    }
}

/// Why a call got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Transport(String),
}

impl Failure {
    /// The label a failed call is counted under beside HTTP statuses.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::Transport(_) => "transport",
        }
    }
}

pub type CallResult = Result<Reply, Failure>;

const DEADLINE: Duration = Duration::from_secs(10);

impl Client {
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            inner: Hyper::builder(TokioExecutor::new())
                .pool_max_idle_per_host(4096)
                .build(connector),
        })
    }

    pub async fn get(&self, path: &str) -> CallResult {
        self.send("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: String) -> CallResult {
        self.send("POST", path, Some(body)).await
    }

    async fn send(&self, method: &str, path: &str, body: Option<String>) -> CallResult {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|error| Failure::Transport(error.to_string()))?;
        let call = async {
            let response = self
                .inner
                .request(request)
                .await
                .map_err(|error| Failure::Transport(error.to_string()))?;
            let status = response.status().as_u16();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|error| Failure::Transport(error.to_string()))?
                .to_bytes();
            Ok(Reply {
                status,
                json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            })
        };
        tokio::time::timeout(DEADLINE, call)
            .await
            .map_err(|_| Failure::Timeout(DEADLINE))?
    }
}
