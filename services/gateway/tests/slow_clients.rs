//! The door slow clients cannot jam: a real gateway on port 0 attacked over raw TCP by clients
//! that trickle headers and bodies, plus the connection cap, the idle timeout, graceful
//! shutdown and the peer address. Backends are dead URLs: nothing here needs them.
//!
//! Every wait has a deadline; "is not answered" is asserted as "nothing arrives within a
//! deadline", never by sleeping first.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod support;

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{Router, extract::ConnectInfo, routing::get};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{mpsc, oneshot},
    task::JoinHandle,
    time::timeout,
};

/// A gateway whose backends are all dead, with extra flags.
async fn gateway(extra: &[&str]) -> SocketAddr {
    let mut flags = vec![
        "--catalog-url=http://127.0.0.1:1",
        "--reservation-url=http://127.0.0.1:1",
    ];
    flags.extend_from_slice(extra);
    support::start_gateway(support::NO_BACKEND, &flags).await
}

async fn connect(addr: SocketAddr) -> TcpStream {
    timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .expect("connects within 5 s")
        .expect("connects")
}

/// Reads one HTTP/1.1 response (head and Content-Length body) within `within`; `None` if the
/// connection ends first. Returns the head (lower-cased) and the body.
async fn read_response(stream: &mut TcpStream, within: Duration) -> Option<(String, String)> {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().expect("content-length"));
            if buf.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).into_owned();
                return Some((head, body));
            }
        }
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .expect("a response within the deadline")
            .unwrap_or(0);
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Waits until the peer closes the connection (EOF or reset), discarding what it sends;
/// returns how long that took, or `None` if it is still open after `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut chunk = [0u8; 4096];
    timeout(within, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

/// One ordinary request on a fresh connection, answered within `within`: (status, head, body).
async fn ordinary(addr: SocketAddr, request: &str, within: Duration) -> (u16, String, String) {
    let started = Instant::now();
    let mut stream = timeout(within, TcpStream::connect(addr))
        .await
        .expect("connects in time")
        .expect("connects");
    stream.write_all(request.as_bytes()).await.expect("write");
    let (head, body) = read_response(&mut stream, within.saturating_sub(started.elapsed()))
        .await
        .expect("a response before the connection closes");
    (status_of(&head), head, body)
}

fn status_of(head: &str) -> u16 {
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line")
}

const HEALTHZ: &str = "GET /healthz HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n";

/// The head of a POST with a 1,000-byte body; with `Expect: 100-continue` the gateway says
/// `100 Continue` when it starts reading the body — proof the request was dispatched.
const SLOW_POST: &str = "POST /queue/issue-token HTTP/1.1\r\nHost: gateway\r\n\
    Content-Type: application/json\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n";

#[derive(Clone, Copy)]
enum Kind {
    /// A few bytes of a request head, then a byte every `every` (or nothing, if `None`).
    Headers { every: Option<Duration> },
    /// A whole head, then the body a byte every `every`.
    Body { every: Duration },
}

/// How a trickler ended: cut off by the server this long after its clock started (the
/// connect for a head, the `100 Continue` for a body), or still open when the test let go.
#[derive(Debug)]
enum Outcome {
    /// After how long, whether a 408 came first, and how the connection ended.
    Cut(Duration, &'static str, &'static str),
    StillOpen,
}

/// A trickling client. It reports on `ready` once it is trickling (connected, head or body
/// begun), then trickles until the server cuts it off or `give_up` passes.
fn trickler(
    addr: SocketAddr,
    kind: Kind,
    ready: mpsc::Sender<()>,
    give_up: Duration,
) -> JoinHandle<Outcome> {
    tokio::spawn(async move {
        let mut stream = connect(addr).await;
        let mut started = Instant::now();
        let every = match kind {
            Kind::Headers { every } => {
                stream
                    .write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Slow: ")
                    .await
                    .expect("write");
                every
            }
            Kind::Body { every } => {
                stream.write_all(SLOW_POST.as_bytes()).await.expect("write");
                let mut got = Vec::new();
                let mut chunk = [0u8; 256];
                while find(&got, b"100 Continue\r\n\r\n").is_none() {
                    let n = timeout(Duration::from_secs(5), stream.read(&mut chunk))
                        .await
                        .expect("100 Continue within 5 s")
                        .expect("read");
                    assert!(n > 0, "closed before 100 Continue");
                    got.extend_from_slice(&chunk[..n]);
                }
                started = Instant::now();
                Some(every)
            }
        };
        let _ = ready.send(()).await;
        let until = tokio::time::Instant::now() + give_up;
        let mut got = Vec::new();
        let mut chunk = [0u8; 1024];
        let cut = |got: &[u8], how: &'static str| {
            let answered = find(got, b"HTTP/1.1 408").is_some();
            Outcome::Cut(
                started.elapsed(),
                if answered { "408, then " } else { "" },
                how,
            )
        };
        loop {
            let tick = async {
                match every {
                    Some(every) => tokio::time::sleep(every).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                read = stream.read(&mut chunk) => match read {
                    Ok(0) => return cut(&got, "EOF"),
                    Ok(n) => got.extend_from_slice(&chunk[..n]), // the 408: read on to the close
                    Err(_) => return cut(&got, "reset"),
                },
                () = tick => {
                    if stream.write_all(b"x").await.is_err() {
                        return cut(&got, "write failed");
                    }
                }
                () = tokio::time::sleep_until(until) => return Outcome::StillOpen,
            }
        }
    })
}

/// 600 trickling heads (half silent after a few bytes, half a byte every 200 ms) and 600
/// trickling bodies, all trickling when this returns.
async fn attack(
    addr: SocketAddr,
    give_up: Duration,
) -> (Vec<JoinHandle<Outcome>>, Vec<JoinHandle<Outcome>>) {
    let (ready, mut trickling) = mpsc::channel(1200);
    let heads = (0..600)
        .map(|i| {
            let every = (i % 2 == 0).then_some(Duration::from_millis(200));
            trickler(addr, Kind::Headers { every }, ready.clone(), give_up)
        })
        .collect();
    let bodies = (0..600)
        .map(|_| {
            trickler(
                addr,
                Kind::Body {
                    every: Duration::from_millis(200),
                },
                ready.clone(),
                give_up,
            )
        })
        .collect();
    drop(ready);
    let setup = Instant::now();
    for _ in 0..1200 {
        timeout(Duration::from_secs(10), trickling.recv())
            .await
            .expect("all 1,200 tricklers are trickling within 10 s")
            .expect("a trickler failed to start");
    }
    eprintln!("1,200 tricklers trickling after {:?}", setup.elapsed());
    (heads, bodies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ordinary_requests_are_answered_within_a_second_while_1200_clients_trickle() {
    // Production defaults: 5 s header and body timeouts, 512 in flight (< 600 slow bodies).
    let addr = gateway(&[]).await;
    let (heads, bodies) = attack(addr, Duration::from_secs(30)).await;

    for _ in 0..3 {
        let started = Instant::now();
        let (status, _, body) = ordinary(addr, HEALTHZ, Duration::from_secs(1)).await;
        assert_eq!(status, 200, "{body}");
        eprintln!("GET /healthz under attack: {:?}", started.elapsed());
    }
    // A request with a body goes through the body layer and the JSON extractor.
    let started = Instant::now();
    let (status, _, body) = ordinary(
        addr,
        "POST /queue/issue-token HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n\
         Content-Length: 1\r\nConnection: close\r\n\r\n{",
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains(r#""code":"INVALID_JSON""#), "{body}");
    eprintln!("POST with a body under attack: {:?}", started.elapsed());

    // The tricklers were all still there (the 5 s timeouts had not passed): the requests got
    // through beside them, not after them.
    let mut ended = Vec::new();
    for (i, task) in heads.into_iter().chain(bodies).enumerate() {
        if task.is_finished() {
            ended.push((i, task.await));
        } else {
            task.abort();
        }
    }
    assert!(ended.is_empty(), "tricklers ended early: {ended:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_trickler_is_cut_off_within_its_timeout_plus_half_a_second() {
    let addr = gateway(&[
        "--header-read-timeout-ms=1000",
        "--body-read-timeout-ms=1000",
    ])
    .await;
    let (heads, bodies) = attack(addr, Duration::from_secs(5)).await;
    let margin = Duration::from_millis(1500);
    for (name, tasks) in [("head", heads), ("body", bodies)] {
        let mut slowest = Duration::ZERO;
        let mut how = std::collections::BTreeMap::<String, usize>::new();
        for task in tasks {
            match task.await.expect("trickler") {
                Outcome::Cut(after, answered, ended) => {
                    slowest = slowest.max(after);
                    *how.entry(format!("{answered}{ended}")).or_default() += 1;
                }
                Outcome::StillOpen => panic!("a {name} trickler was still open after 5 s"),
            }
        }
        eprintln!("slowest {name} trickler cut off after {slowest:?} (timeout 1 s); seen: {how:?}");
        assert!(slowest <= margin, "{name}: {slowest:?}");
        if name == "body" {
            assert_eq!(
                how.keys().collect::<Vec<_>>(),
                ["408, then EOF"],
                "every slow body is told 408"
            );
        }
    }
    let (status, _, _) = ordinary(addr, HEALTHZ, Duration::from_secs(1)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_stalled_body_is_answered_408_body_timeout_in_json_and_the_connection_closed() {
    let addr = gateway(&["--body-read-timeout-ms=300"]).await;
    let mut stream = connect(addr).await;
    stream
        .write_all(
            b"POST /queue/issue-token HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n\
              Content-Length: 1000\r\n\r\n{\"userId\":",
        )
        .await
        .unwrap();
    let started = Instant::now();
    let (head, body) = read_response(&mut stream, Duration::from_secs(3))
        .await
        .expect("a response");
    eprintln!("408 after {:?} (timeout 300 ms)", started.elapsed());
    assert_eq!(status_of(&head), 408, "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(json["status"], 408);
    assert_eq!(json["code"], "BODY_TIMEOUT");
    assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(
        closed_within(&mut stream, Duration::from_secs(1))
            .await
            .is_some(),
        "the connection is closed after the 408"
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused_413_in_json_and_bodies_within_the_limit_reach_the_handler() {
    let addr = gateway(&["--max-body-bytes=1024"]).await;
    // Declared too large: refused before a byte of it is sent.
    let (status, head, body) = ordinary(
        addr,
        "POST /queue/issue-token HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n\
         Content-Length: 5000\r\n\r\n",
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(head.contains("connection: close"), "{head}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        (json["status"].as_u64(), json["code"].as_str()),
        (Some(413), Some("PAYLOAD_TOO_LARGE"))
    );

    // Chunked, so only counting tells: refused once it passes the limit.
    let chunk = "a".repeat(800);
    let request = format!(
        "POST /queue/issue-token HTTP/1.1\r\nHost: gateway\r\nTransfer-Encoding: chunked\r\n\r\n\
         320\r\n{chunk}\r\n320\r\n{chunk}\r\n0\r\n\r\n"
    );
    let (status, _, body) = ordinary(addr, &request, Duration::from_secs(1)).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains(r#""code":"PAYLOAD_TOO_LARGE""#), "{body}");

    // Within the limit the buffered body reaches JsonBody: bad JSON, bad shape, and a good
    // one that gets as far as the (dead) queue service.
    let http = support::Http::new(addr);
    support::assert_error(
        &http.post("/queue/issue-token", "{").await,
        400,
        "INVALID_JSON",
    );
    support::assert_error(
        &http.post("/queue/issue-token", r#"{"userId": "x"}"#).await,
        400,
        "INVALID_BODY",
    );
    let reply = http.post("/queue/issue-token", r#"{"userId": 7}"#).await;
    assert_eq!(reply.status, 503, "{}", reply.json);
}

#[tokio::test]
async fn a_slow_body_does_not_take_an_in_flight_slot() {
    let addr = gateway(&["--max-in-flight=1"]).await;
    let (ready, mut trickling) = mpsc::channel(1);
    let slow = trickler(
        addr,
        Kind::Body {
            every: Duration::from_millis(200),
        },
        ready,
        Duration::from_secs(30),
    );
    // Once it reports, the slow body is being read (the gateway said 100 Continue).
    timeout(Duration::from_secs(5), trickling.recv())
        .await
        .expect("trickling within 5 s")
        .expect("trickler started");
    let (status, _, body) = ordinary(addr, HEALTHZ, Duration::from_secs(1)).await;
    assert_eq!(status, 200, "the only slot is free: {body}");
    let http = support::Http::new(addr);
    let reply = timeout(Duration::from_secs(1), http.post("/queue/issue-token", "{"))
        .await
        .expect("answered within 1 s");
    support::assert_error(&reply, 400, "INVALID_JSON");
    assert!(!slow.is_finished(), "the slow body is still being read");
    slow.abort();
}

#[tokio::test]
async fn past_the_connection_cap_new_connections_wait_until_one_closes() {
    let addr = gateway(&["--max-connections=2", "--header-read-timeout-ms=10000"]).await;
    // Two connections hold both slots, mid-head (a slot that cannot be reclaimed).
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut stream = connect(addr).await;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: g")
            .await
            .unwrap();
        holders.push(stream);
    }
    // The third connects (the kernel completes the handshake) but is not served...
    let mut waiting = connect(addr).await;
    waiting.write_all(HEALTHZ.as_bytes()).await.unwrap();
    let mut byte = [0u8; 1];
    assert!(
        timeout(Duration::from_millis(500), waiting.read(&mut byte))
            .await
            .is_err(),
        "a connection past the cap is not served"
    );
    // ...until a slot frees.
    let started = Instant::now();
    drop(holders.pop());
    let (head, _) = read_response(&mut waiting, Duration::from_secs(1))
        .await
        .expect("served once a slot is free");
    assert_eq!(status_of(&head), 200);
    eprintln!("served {:?} after a slot freed", started.elapsed());
    // And the gateway keeps serving: the waiting one's slot is free again (Connection: close).
    let (status, _, _) = ordinary(addr, HEALTHZ, Duration::from_secs(1)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn at_the_connection_cap_idle_keep_alive_connections_make_room() {
    let addr = gateway(&["--max-connections=2"]).await;
    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut stream = connect(addr).await;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
            .await
            .unwrap();
        let (head, _) = read_response(&mut stream, Duration::from_secs(1))
            .await
            .expect("response");
        assert_eq!(status_of(&head), 200);
        idle.push(stream); // kept alive, idle (the idle timeout is 60 s)
    }
    let started = Instant::now();
    let (status, _, _) = ordinary(addr, HEALTHZ, Duration::from_secs(1)).await;
    assert_eq!(status, 200);
    eprintln!(
        "a third connection served {:?} after the cap was hit",
        started.elapsed()
    );
    for mut stream in idle {
        assert!(
            closed_within(&mut stream, Duration::from_secs(1))
                .await
                .is_some(),
            "an idle connection was closed to make room"
        );
    }
}

#[tokio::test]
async fn a_kept_alive_connection_may_idle_past_the_header_timeout_until_the_idle_timeout() {
    let addr = gateway(&["--header-read-timeout-ms=300", "--idle-timeout-ms=1500"]).await;
    let mut stream = connect(addr).await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n";
    stream.write_all(request).await.unwrap();
    let (head, _) = read_response(&mut stream, Duration::from_secs(1))
        .await
        .expect("first");
    assert_eq!(status_of(&head), 200);
    // Idle for twice the header timeout: still open...
    let mut byte = [0u8; 1];
    assert!(
        timeout(Duration::from_millis(600), stream.read(&mut byte))
            .await
            .is_err(),
        "an idle connection outlives the header timeout"
    );
    // ...and it serves the next request.
    stream.write_all(request).await.unwrap();
    let (head, _) = read_response(&mut stream, Duration::from_secs(1))
        .await
        .expect("second");
    assert_eq!(status_of(&head), 200);
    // Then it is closed once idle for the idle timeout.
    let closed = closed_within(&mut stream, Duration::from_secs(3))
        .await
        .expect("closed after the idle timeout");
    eprintln!("idle connection closed after {closed:?} (idle timeout 1.5 s)");
    assert!(
        closed >= Duration::from_millis(1300),
        "{closed:?}: the idle timeout, not the header one"
    );
}

/// A server of our own router on port 0, with a way to shut it down.
async fn serve_router(
    router: Router,
) -> (
    SocketAddr,
    oneshot::Sender<()>,
    JoinHandle<anyhow::Result<()>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let limits = gateway::server::Limits {
        header_read_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(60),
        max_connections: 100,
        drain_timeout: Duration::from_secs(5),
    };
    let server = tokio::spawn(gateway::server::serve(listener, router, limits, async {
        let _ = stopped.await;
    }));
    (addr, stop, server)
}

#[tokio::test]
async fn handlers_see_the_peer_address_as_connect_info() {
    let router = Router::new().route(
        "/peer",
        get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
    );
    let (addr, _stop, _server) = serve_router(router).await;
    let mut stream = connect(addr).await;
    let local = stream.local_addr().unwrap();
    stream
        .write_all(b"GET /peer HTTP/1.1\r\nHost: gateway\r\n\r\n")
        .await
        .unwrap();
    let (_, body) = read_response(&mut stream, Duration::from_secs(1))
        .await
        .expect("response");
    assert_eq!(body, local.to_string());
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests_then_closes_every_connection() {
    let (started_tx, started_rx) = oneshot::channel::<()>();
    let started_tx = Arc::new(std::sync::Mutex::new(Some(started_tx)));
    let router = Router::new()
        .route("/fast", get(|| async { "fast" }))
        .route(
            "/slow",
            get(move || {
                let started_tx = started_tx.clone();
                async move {
                    if let Some(tx) = started_tx.lock().unwrap().take() {
                        let _ = tx.send(());
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "slow"
                }
            }),
        );
    let (addr, stop, server) = serve_router(router).await;

    // An idle kept-alive connection, and one with a request in flight.
    let mut idle = connect(addr).await;
    idle.write_all(b"GET /fast HTTP/1.1\r\nHost: gateway\r\n\r\n")
        .await
        .unwrap();
    read_response(&mut idle, Duration::from_secs(1))
        .await
        .expect("fast");
    let mut busy = connect(addr).await;
    busy.write_all(b"GET /slow HTTP/1.1\r\nHost: gateway\r\n\r\n")
        .await
        .unwrap();
    timeout(Duration::from_secs(1), started_rx)
        .await
        .expect("in flight")
        .unwrap();

    stop.send(()).unwrap();
    assert!(
        closed_within(&mut idle, Duration::from_millis(500))
            .await
            .is_some(),
        "the idle connection closes at once"
    );
    let (head, body) = read_response(&mut busy, Duration::from_secs(2))
        .await
        .expect("the in-flight request is answered");
    assert_eq!((status_of(&head), body.as_str()), (200, "slow"));
    assert!(head.contains("connection: close"), "{head}");
    assert!(
        closed_within(&mut busy, Duration::from_secs(1))
            .await
            .is_some()
    );
    timeout(Duration::from_secs(2), server)
        .await
        .expect("the server ends once its connections have closed")
        .unwrap()
        .unwrap();
    // The listener is gone.
    let refused = timeout(Duration::from_secs(1), TcpStream::connect(addr))
        .await
        .expect("in time");
    assert!(refused.is_err(), "no new connections after shutdown");
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_still_served() {
    use http_body_util::{BodyExt, Empty};
    use hyper::body::Bytes;
    use hyper_util::{client::legacy::Client, rt::TokioExecutor};

    let addr = gateway(&[]).await;
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Empty<Bytes>>();
    let response = timeout(
        Duration::from_secs(2),
        client.get(format!("http://{addr}/healthz").parse().unwrap()),
    )
    .await
    .expect("answered within 2 s")
    .unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let body = timeout(Duration::from_secs(1), response.into_body().collect())
        .await
        .expect("body in time")
        .unwrap()
        .to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("UP"));
}
