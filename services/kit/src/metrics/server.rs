//! The `/metrics` HTTP server: its own listener, HTTP/1.1 only, `GET /metrics` answers the
//! registry in Prometheus text (0.0.4), anything else a plain 404. Every connection has a
//! header read deadline and a whole-connection deadline, so a silent client holds nothing.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::{body::Bytes, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::prometheus_text;
use tokio::{net::TcpListener, task::JoinHandle};

use super::Registry;

/// Longest wait for a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest any one connection lives (a scraper reconnects).
const CONNECTION_DEADLINE: Duration = Duration::from_secs(30);

/// The registry as Prometheus text.
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    if let Err(error) = prometheus_text::encode(&mut text, registry) {
        tracing::warn!(%error, "encoding the metrics failed");
    }
    text
}

/// A running metrics server; stops when stopped or dropped.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// Where it listens (the real port when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting; connections in progress end with the task.
    pub fn stop(self) {}
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `addr` (port 0 picks a free one) and serves `registry` there until the returned
/// server is stopped or dropped.
pub async fn serve(addr: SocketAddr, registry: Registry) -> std::io::Result<MetricsServer> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let registry = Arc::new(registry);
    tracing::info!(%addr, "metrics listening");
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let registry = Arc::clone(&registry);
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let registry = Arc::clone(&registry);
                    async move { Ok::<_, Infallible>(answer(&request, &registry)) }
                });
                let connection = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                match tokio::time::timeout(CONNECTION_DEADLINE, connection).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => tracing::debug!(%error, "metrics connection failed"),
                    Err(_) => tracing::debug!("metrics connection past its deadline; closed"),
                }
            });
        }
    });
    Ok(MetricsServer { addr, task })
}

fn answer<B>(request: &Request<B>, registry: &Registry) -> Response<Full<Bytes>> {
    let (status, content_type, body) =
        if request.uri().path() == "/metrics" && request.method() == Method::GET {
            (
                StatusCode::OK,
                prometheus_text::CONTENT_TYPE,
                Bytes::from(encode(registry)),
            )
        } else {
            (
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                Bytes::from_static(b"not found: metrics are at GET /metrics\n"),
            )
        };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpStream,
    };

    use super::*;
    use crate::metrics::client::metrics::counter::Counter;

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer))
            .await
            .unwrap()
            .unwrap();
        answer
    }

    #[tokio::test]
    async fn serves_prometheus_text_at_metrics_and_404_elsewhere_until_stopped() {
        let mut registry = Registry::default();
        let counter: Counter = Counter::default();
        registry.register("demo_calls", "Calls", counter.clone());
        counter.inc_by(3);
        let server = serve("127.0.0.1:0".parse().unwrap(), registry)
            .await
            .unwrap();
        let addr = server.addr();

        let answer = get(addr, "/metrics").await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(
            answer.contains("content-type: text/plain; version=0.0.4"),
            "{answer}"
        );
        assert!(
            answer.contains("\n# TYPE demo_calls_total counter\n"),
            "{answer}"
        );
        assert!(answer.contains("\ndemo_calls_total 3\n"), "{answer}");

        let answer = get(addr, "/elsewhere").await;
        assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n"), "{answer}");

        server.stop();
        // The listener closes with the task: connecting fails (or the connection is reset).
        let refused = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match TcpStream::connect(addr).await {
                    Err(_) => break,
                    Ok(mut stream) => {
                        let mut buffer = [0u8; 1];
                        if matches!(stream.read(&mut buffer).await, Ok(0) | Err(_)) {
                            break;
                        }
                    }
                }
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(refused.is_ok(), "the stopped server still answers");
    }

    #[tokio::test]
    async fn a_client_that_never_sends_headers_is_disconnected() {
        let server = serve("127.0.0.1:0".parse().unwrap(), Registry::default())
            .await
            .unwrap();
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\n")
            .await
            .unwrap();
        let mut buffer = Vec::new();
        // Closed by the header read deadline (5 s), well before this test's own 20 s.
        let closed =
            tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut buffer)).await;
        assert!(closed.is_ok(), "the connection stayed open");
    }
}
