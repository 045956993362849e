//! A pooled HTTP/1.1 keep-alive client that returns status and JSON, with a deadline per call.

use std::time::Duration;

use anyhow::Context;
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

const DEADLINE: Duration = Duration::from_secs(10);

impl Client {
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            inner: Hyper::builder(TokioExecutor::new())
                .pool_max_idle_per_host(1024)
                .build(connector),
        })
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Reply> {
        self.send("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: String) -> anyhow::Result<Reply> {
        self.send("POST", path, Some(body)).await
    }

    async fn send(&self, method: &str, path: &str, body: Option<String>) -> anyhow::Result<Reply> {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let call = async {
            let response = self.inner.request(request).await?;
            let status = response.status().as_u16();
            let bytes = response.into_body().collect().await?.to_bytes();
            anyhow::Ok(Reply {
                status,
                json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            })
        };
        tokio::time::timeout(DEADLINE, call)
            .await
            .with_context(|| format!("{method} {path}: no answer within {DEADLINE:?}"))?
    }
}
