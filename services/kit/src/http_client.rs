//! A small pooled HTTP/1.1 client: one base URL, keep-alive connections (TCP_NODELAY), and a
//! deadline on every call. A call is a method and a path on the base, with optional extra
//! headers and body; the answer is the status, the headers and the body bytes (as text or JSON
//! on demand). Errors say only whether the deadline passed or no HTTP answer came.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kit::http_client::Error> {
//! use std::time::Duration;
//! let client = kit::http_client::HttpClient::new("http://127.0.0.1:8080");
//! let reply = client
//!     .post("/queue/issue-token")
//!     .header("idempotency-key", "k-1")
//!     .json(r#"{"userId": 1}"#)
//!     .deadline(Duration::from_secs(2))
//!     .send()
//!     .await?;
//! println!("{} {}", reply.status, reply.json()["token"]);
//! # Ok(())
//! # }
//! ```
//!
//! Per call it costs what a hand-written hyper call costs: the URI string, the request's
//! header map and the body move into hyper; the reply's headers and body move out.

use std::{borrow::Cow, fmt, net::SocketAddr, sync::Arc, time::Duration};

use http::{HeaderMap, HeaderName, HeaderValue, Method, header::CONTENT_TYPE, request};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::{
    client::legacy::{Client as Hyper, connect::HttpConnector},
    rt::TokioExecutor,
};

/// How a client is set up.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// The deadline of a call that sets none of its own: connecting, sending, and reading the
    /// whole reply.
    pub deadline: Duration,
    /// Idle keep-alive connections kept per host (a load generator wants many).
    pub pool_max_idle_per_host: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(10),
            pool_max_idle_per_host: 64,
        }
    }
}

/// A pooled client for one base URL; clones share the pool.
#[derive(Clone)]
pub struct HttpClient {
    base: Arc<str>,
    inner: Hyper<HttpConnector, Full<Bytes>>,
    deadline: Duration,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("base", &self.base)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client for `base` (`http://host:port`, a trailing `/` is ignored) with default options.
    pub fn new(base: &str) -> Self {
        Self::with_options(base, Options::default())
    }

    /// A client for `http://{addr}` with default options.
    pub fn for_addr(addr: SocketAddr) -> Self {
        Self::new(&format!("http://{addr}"))
    }

    pub fn with_options(base: &str, options: Options) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Self {
            base: base.trim_end_matches('/').into(),
            inner: Hyper::builder(TokioExecutor::new())
                .pool_max_idle_per_host(options.pool_max_idle_per_host)
                .build(connector),
            deadline: options.deadline,
        }
    }

    /// The base URL, without a trailing `/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A call of `method` (a [`Method`] or its name, e.g. `"PATCH"`) on `path` (from `/`,
    /// query included) under the base.
    pub fn request<M>(&self, method: M, path: &str) -> Call<'_>
    where
        Method: TryFrom<M>,
        <Method as TryFrom<M>>::Error: Into<http::Error>,
    {
        Call {
            client: self,
            request: request::Builder::new()
                .method(method)
                .uri(format!("{}{path}", self.base)),
            body: None,
            deadline: self.deadline,
        }
    }

    pub fn get(&self, path: &str) -> Call<'_> {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> Call<'_> {
        self.request(Method::POST, path)
    }

    pub fn patch(&self, path: &str) -> Call<'_> {
        self.request(Method::PATCH, path)
    }

    pub fn delete(&self, path: &str) -> Call<'_> {
        self.request(Method::DELETE, path)
    }
}

/// One call being put together; nothing is sent before [`Call::send`].
#[must_use = "a call does nothing until it is sent"]
pub struct Call<'a> {
    client: &'a HttpClient,
    request: request::Builder,
    body: Option<Bytes>,
    deadline: Duration,
}

impl Call<'_> {
    /// Adds a header (sent in the order added). An invalid name or value fails the call with
    /// [`Error::Transport`] when it is sent.
    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: Into<http::Error>,
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: Into<http::Error>,
    {
        self.request = self.request.header(name, value);
        self
    }

    /// The body as is (set a `content-type` with [`Call::header`] if it needs one).
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// A JSON body: `content-type: application/json`, then the body as is.
    pub fn json(self, body: impl Into<Bytes>) -> Self {
        self.header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body)
    }

    /// This call's deadline instead of the client's.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Sends the call and reads the whole reply, all within the deadline.
    pub async fn send(self) -> Result<Response, Error> {
        let request = self
            .request
            .body(Full::new(self.body.unwrap_or_default()))
            .map_err(|error| Error::transport(&error))?;
        let inner = &self.client.inner;
        let call = async move {
            let response = inner
                .request(request)
                .await
                .map_err(|error| Error::transport(&error))?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|error| Error::transport(&error))?
                .to_bytes();
            Ok(Response {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.deadline, call)
            .await
            .map_err(|_| Error::Timeout(self.deadline))?
    }
}

/// An HTTP answer, whatever its status.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    /// A header's value, when present and visible ASCII.
    pub fn header(&self, name: impl http::header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// The body as JSON; `Null` when it is not JSON (or empty).
    pub fn json(&self) -> serde_json::Value {
        self.try_json().unwrap_or(serde_json::Value::Null)
    }

    /// The body as JSON, or why it is not.
    pub fn try_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// Why a call got no HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The deadline (given) passed first.
    Timeout(Duration),
    /// No answer: connecting, writing or reading failed, or the request could not be built
    /// (an invalid URI or header). The message includes the causes.
    Transport(String),
}

impl Error {
    /// A short label to count failures under beside HTTP statuses.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::Transport(_) => "transport",
        }
    }

    fn transport(error: &dyn std::error::Error) -> Self {
        use fmt::Write;
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            let _ = write!(message, ": {cause}");
            source = cause.source();
        }
        Self::Transport(message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(deadline) => write!(f, "no answer within {deadline:?}"),
            Self::Transport(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::{TcpListener, TcpStream},
    };

    use super::{Error, HttpClient, Options};

    /// Reads one request (head and `content-length` body) and returns its bytes.
    async fn read_request(stream: &mut TcpStream) -> String {
        let mut seen = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            let n = stream.read(&mut buffer).await.unwrap();
            assert!(n > 0, "the client closed mid-request");
            seen.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&seen);
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|l| l.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if seen.len() >= end + 4 + length {
                    return String::from_utf8(seen).unwrap();
                }
            }
        }
    }

    /// Answers `count` requests on one connection with `answer`; returns what came in.
    async fn serve(listener: TcpListener, count: usize, answer: &'static [u8]) -> Vec<String> {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut requests = Vec::new();
        for _ in 0..count {
            requests.push(read_request(&mut stream).await);
            stream.write_all(answer).await.unwrap();
        }
        requests
    }

    #[tokio::test]
    async fn sends_method_path_headers_and_body_and_reads_status_headers_and_body() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = HttpClient::for_addr(listener.local_addr().unwrap());
        let server = tokio::spawn(serve(
            listener,
            2,
            b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\nlocation: /x/1\r\ncontent-length: 8\r\n\r\n{\"id\":1}",
        ));

        let reply = client
            .request("PATCH", "/x/1?full=true")
            .header("idempotency-key", "k-1")
            .json(r#"{"a":1}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status, 201);
        assert_eq!(reply.header("location"), Some("/x/1"));
        assert_eq!(reply.json()["id"], 1);
        assert_eq!(reply.text(), r#"{"id":1}"#);

        // The same connection serves the next call (keep-alive).
        let reply = client.get("/x/1").send().await.unwrap();
        assert_eq!(reply.status, 201);

        let requests = server.await.unwrap();
        let patch = &requests[0];
        assert!(
            patch.starts_with("PATCH /x/1?full=true HTTP/1.1\r\n"),
            "{patch}"
        );
        assert!(patch.contains("\r\nidempotency-key: k-1\r\n"), "{patch}");
        assert!(
            patch.contains("\r\ncontent-type: application/json\r\n"),
            "{patch}"
        );
        assert!(patch.ends_with("\r\n\r\n{\"a\":1}"), "{patch}");
        assert!(requests[1].starts_with("GET /x/1 HTTP/1.1\r\n"));
        assert!(!requests[1].contains("content-type"), "{}", requests[1]);
    }

    #[tokio::test]
    async fn a_body_that_is_not_json_reads_as_null() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = HttpClient::new(&format!("http://{}/", listener.local_addr().unwrap()));
        let server = tokio::spawn(serve(
            listener,
            1,
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 5\r\n\r\nnope!",
        ));
        let reply = client.delete("/gone").send().await.unwrap();
        assert_eq!(reply.status, 404);
        assert_eq!(reply.json(), serde_json::Value::Null);
        assert!(reply.try_json().is_err());
        assert_eq!(reply.text(), "nope!");
        assert!(server.await.unwrap()[0].starts_with("DELETE /gone HTTP/1.1\r\n"));
    }

    #[tokio::test]
    async fn a_silent_server_is_a_timeout_and_a_closed_port_a_transport_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = HttpClient::with_options(
            &format!("http://{addr}"),
            Options {
                deadline: Duration::from_secs(30),
                ..Options::default()
            },
        );
        let silent = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(stream);
        });
        let error = client
            .get("/slow")
            .deadline(Duration::from_millis(100))
            .send()
            .await
            .unwrap_err();
        assert_eq!(error, Error::Timeout(Duration::from_millis(100)));
        assert_eq!(error.label(), "timeout");
        silent.abort();

        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let error = HttpClient::for_addr(closed)
            .get("/")
            .send()
            .await
            .unwrap_err();
        assert_eq!(error.label(), "transport", "{error}");
        assert!(error.to_string().contains("onnect"), "{error}");
    }

    #[tokio::test]
    async fn an_invalid_header_fails_the_call_without_sending() {
        let client = HttpClient::new("http://127.0.0.1:9");
        let error = client
            .get("/")
            .header("bad header", "x")
            .send()
            .await
            .unwrap_err();
        assert_eq!(error.label(), "transport", "{error}");
    }
}
