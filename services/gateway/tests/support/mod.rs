//! Spawns the real system on port 0 for HTTP tests: a queue service on a real Redis (own key
//! prefix, manual clock, no background admitter) and a gateway in front of it.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use queue::{Clock, Policy, QueueStore, domain::QueueId};
use serde_json::Value;

pub const START_MS: i64 = 1_800_000_000_000;

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub struct System {
    pub http: Http,
    pub queue_store: QueueStore,
    pub now: Arc<AtomicI64>,
}

impl System {
    pub async fn start(policy: Policy) -> Self {
        let prefix = format!("test:{}", uuid::Uuid::new_v4().simple());
        let (clock, now) = Clock::manual(START_MS);
        let queue_store =
            QueueStore::connect(&redis_url(), 16, &prefix, policy, Duration::from_secs(5))
                .expect("store")
                .with_clock(clock);
        let queue_config = queue::Config::parse_from([
            "queue",
            "--listen-addr=127.0.0.1:0",
            "--admitter=false",
            &format!("--redis-url={}", redis_url()),
            &format!("--key-prefix={prefix}"),
        ]);
        let (queue_addr, serve) =
            queue::build_with_store(queue_config, queue_store.clone(), std::future::pending())
                .await
                .expect("queue starts");
        tokio::spawn(serve);
        let http = Http::new(start_gateway(&format!("http://{queue_addr}"), &[]).await);
        Self {
            http,
            queue_store,
            now,
        }
    }

    pub fn advance(&self, ms: i64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }

    pub async fn admit(&self) -> u64 {
        self.queue_store
            .admit(QueueId::Default)
            .await
            .expect("admit")
            .admitted
    }
}

/// A gateway on port 0 in front of `queue_url`, with extra flags.
pub async fn start_gateway(queue_url: &str, extra: &[&str]) -> SocketAddr {
    let mut args = vec![
        "gateway".to_owned(),
        "--listen-addr=127.0.0.1:0".to_owned(),
        format!("--queue-url={queue_url}"),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let config = gateway::Config::parse_from(args);
    let (addr, serve) = gateway::build(config, std::future::pending())
        .await
        .expect("gateway starts");
    tokio::spawn(serve);
    addr
}

pub fn default_policy() -> Policy {
    Policy {
        admission_rate: 1000.0,
        active_cap: 0,
        active_ttl: Duration::from_secs(600),
        waiting_grace: Duration::from_secs(60),
    }
}

/// A plain HTTP/1.1 client that returns status and parsed JSON (and fails the test on a
/// non-JSON body).
#[derive(Clone)]
pub struct Http {
    addr: SocketAddr,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub json: Value,
}

impl Http {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        content_type: Option<&str>,
    ) -> Reply {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("http://{}{}", self.addr, path));
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
            .expect("request");
        let response = tokio::time::timeout(Duration::from_secs(10), self.client.request(request))
            .await
            .expect("the gateway answers within 10 s")
            .expect("response");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "{method} {path} -> {status} with a non-JSON body: {:?}",
                String::from_utf8_lossy(&bytes)
            )
        });
        Reply {
            status,
            content_type,
            json,
        }
    }

    pub async fn post(&self, path: &str, body: &str) -> Reply {
        self.send("POST", path, Some(body), Some("application/json"))
            .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None, None).await
    }
}

/// Asserts a JSON error of the contract's shape with this status and code.
pub fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "body: {}", reply.json);
    assert_eq!(reply.json["status"], status, "body: {}", reply.json);
    assert_eq!(reply.json["code"], code, "body: {}", reply.json);
    assert!(
        reply.json["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "body: {}",
        reply.json
    );
    assert!(
        reply.content_type.starts_with("application/json"),
        "content-type {}",
        reply.content_type
    );
}
