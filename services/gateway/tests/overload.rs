//! Shedding is cheap: a real gateway on port 0 in front of a stand-in queue service whose
//! latency the test sets (or which holds its calls until the test lets them go). The adaptive
//! in-flight limit falls when the backend slows, requests past it are answered 503
//! `OVERLOADED` with `Retry-After` and counted in `http_server_rejected_total`, and the log
//! gets one summary line per interval, never a line per shed or failed request.
//!
//! No sleep stands in for synchronisation: the test waits for arrivals it is told of, for
//! gauges and log lines it polls, each under a deadline. The stand-in's latency is the
//! condition under test, not a wait.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod support;

use std::{
    io::Write,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use clap::Parser;
use kit::http_client::HttpClient;
use ticketing_proto::queue::v1::{self as pb, queue_service_server::QueueService};
use tokio::sync::{Semaphore, mpsc};
use tonic::{Request, Response, Status};

/// A queue service answering issue-token after `delay_ms`, or, with a gate, once the test
/// adds a permit; it reports each arrival.
#[derive(Clone)]
struct StandInQueue {
    delay_ms: Arc<AtomicU64>,
    gate: Option<Arc<Semaphore>>,
    arrivals: mpsc::UnboundedSender<()>,
}

#[tonic::async_trait]
impl QueueService for StandInQueue {
    async fn issue_token(
        &self,
        _: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::QueueEntry>, Status> {
        let _ = self.arrivals.send(());
        if let Some(gate) = &self.gate {
            gate.acquire().await.expect("gate open").forget();
        }
        let delay = self.delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        Ok(Response::new(pb::QueueEntry {
            token: "a-token".into(),
            status: pb::TokenStatus::Waiting.into(),
            position: 1,
            ..Default::default()
        }))
    }
    async fn get_status(
        &self,
        _: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::QueueEntry>, Status> {
        Err(Status::unimplemented("a stand-in queue"))
    }
    async fn validate_token(
        &self,
        _: Request<pb::ValidateTokenRequest>,
    ) -> Result<Response<pb::ValidateTokenResponse>, Status> {
        Err(Status::unimplemented("a stand-in queue"))
    }
    async fn release_token(
        &self,
        _: Request<pb::ReleaseTokenRequest>,
    ) -> Result<Response<pb::ReleaseTokenResponse>, Status> {
        Err(Status::unimplemented("a stand-in queue"))
    }
    crate::support::no_operator_rpcs!();
}

/// Serves `queue` on port 0; returns its URL.
async fn serve(queue: StandInQueue) -> String {
    let (addr, incoming) = kit::grpc::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let server = tonic::transport::Server::builder()
        .add_service(pb::queue_service_server::QueueServiceServer::new(queue))
        .serve_with_incoming(incoming);
    tokio::spawn(server);
    format!("http://{addr}")
}

/// A gateway in front of `queue_url` (no rate limit: every caller is one test), with extra
/// flags; returns its address and its metrics address.
async fn gateway(queue_url: &str, extra: &[&str]) -> (SocketAddr, SocketAddr) {
    let mut args = vec![
        "gateway".to_owned(),
        "--listen-addr=127.0.0.1:0".to_owned(),
        "--metrics-addr=127.0.0.1:0".to_owned(),
        "--auth=trusted".to_owned(),
        "--rate-limit-per-sec=0".to_owned(),
        format!("--queue-url={queue_url}"),
        format!("--catalog-url={}", support::NO_BACKEND),
        format!("--reservation-url={}", support::NO_BACKEND),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let started = gateway::start(gateway::Config::parse_from(args), std::future::pending())
        .await
        .expect("gateway starts");
    tokio::spawn(started.serve);
    (started.addr, started.metrics_addr)
}

async fn metric(metrics: SocketAddr, name: &str, labels: &[(&str, &str)]) -> f64 {
    kit::metrics::scrape(metrics)
        .await
        .unwrap()
        .sum(name, labels)
        .unwrap_or(0.0)
}

/// How an issue-token call was answered.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Served,
    /// 503 OVERLOADED with `Retry-After: 1`.
    Shed,
    Other(u16, String),
}

async fn issue_token(http: &HttpClient) -> Answer {
    let response = http
        .post("/queue/issue-token")
        .json(r#"{"userId": 7}"#)
        .send()
        .await
        .expect("answered");
    let code = response.try_json().map(|j| j["code"].clone()).ok();
    match (response.status, code.as_ref().and_then(|c| c.as_str())) {
        (200, _) => Answer::Served,
        (503, Some("OVERLOADED")) if response.header("retry-after") == Some("1") => Answer::Shed,
        (status, _) => Answer::Other(status, response.text().into_owned()),
    }
}

/// Polls `check` every 20 ms until it holds; fails after `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    let mut every = tokio::time::interval(Duration::from_millis(20));
    loop {
        every.tick().await;
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_falls_when_the_backend_slows_and_past_it_requests_are_shed_503_overloaded_with_retry_after()
 {
    let delay_ms = Arc::new(AtomicU64::new(0));
    let (arrivals, _) = mpsc::unbounded_channel();
    let queue = serve(StandInQueue {
        delay_ms: delay_ms.clone(),
        gate: None,
        arrivals,
    })
    .await;
    let (addr, metrics) = gateway(
        &queue,
        &[
            "--max-in-flight=64",
            "--min-in-flight=4",
            "--limit-window-ms=20",
        ],
    )
    .await;
    let limit = || metric(metrics, "http_server_concurrency_limit", &[]);
    assert_eq!(limit().await, 64.0, "the limit starts at the ceiling");
    let http = HttpClient::for_addr(addr);

    // A fast backend for several windows: the baseline.
    let started = Instant::now();
    let mut served = 0;
    while served < 100 || started.elapsed() < Duration::from_millis(200) {
        assert_eq!(issue_token(&http).await, Answer::Served);
        served += 1;
    }
    assert_eq!(limit().await, 64.0, "a fast backend keeps the limit");

    // The backend slows to 50 ms while 64 callers keep the gateway at its limit.
    delay_ms.store(50, Ordering::Relaxed);
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..64)
        .map(|_| {
            let http = http.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let answer = issue_token(&http).await;
                    if answer == Answer::Shed {
                        // A client that honours Retry-After at all (if not its full second).
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    answers.push(answer);
                }
                answers
            })
        })
        .collect();
    eventually(
        Duration::from_secs(30),
        "the limit falls to 8 or less",
        || async { limit().await <= 8.0 },
    )
    .await;
    let low = limit().await;
    assert!(low >= 4.0, "never below the floor: {low}");
    // Past the lowered limit: shed at once.
    let shed_before = metric(
        metrics,
        "http_server_rejected_total",
        &[("reason", "overloaded")],
    )
    .await;
    eventually(Duration::from_secs(10), "requests are shed", || async {
        metric(
            metrics,
            "http_server_rejected_total",
            &[("reason", "overloaded")],
        )
        .await
            > shed_before
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut counts = (0, 0);
    for caller in callers {
        for answer in caller.await.unwrap() {
            match answer {
                Answer::Served => counts.0 += 1,
                Answer::Shed => counts.1 += 1,
                Answer::Other(status, body) => panic!("{status}: {body}"),
            }
        }
    }
    eprintln!(
        "slow backend: {} served, {} shed; limit {low}",
        counts.0, counts.1
    );
    assert!(counts.0 > 0 && counts.1 > 0, "{counts:?}");
    assert_eq!(
        metric(
            metrics,
            "http_server_rejected_total",
            &[("reason", "overloaded")]
        )
        .await,
        f64::from(counts.1),
        "every shed answer is counted"
    );
}

/// The gateway's log lines as text (no time, no colours), from the test's own thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Installs a subscriber at INFO (what production runs) for the current thread.
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let sink = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .without_time()
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The value of `field=N` in a log line.
fn field(line: &str, name: &str) -> Option<u64> {
    let at = line.find(&format!(" {name}="))? + name.len() + 2;
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

// A current-thread runtime: the gateway's tasks run on this thread, so they log to the
// subscriber installed here (and only this test's gateway does).
#[tokio::test(flavor = "current_thread")]
async fn shedding_many_requests_logs_one_summary_line_per_interval_and_counts_each_in_the_rejected_metric()
 {
    let captured = Captured::default();
    let _guard = captured.install();
    let gate = Arc::new(Semaphore::new(0));
    let (arrivals, mut arrived) = mpsc::unbounded_channel();
    let queue = serve(StandInQueue {
        delay_ms: Arc::default(),
        gate: Some(gate.clone()),
        arrivals,
    })
    .await;
    let interval = Duration::from_millis(300);
    let (addr, metrics) = gateway(
        &queue,
        &[
            "--max-in-flight=2",
            "--min-in-flight=2",
            "--failure-log-interval-ms=300",
        ],
    )
    .await;
    let http = HttpClient::for_addr(addr);
    // Two requests hold both slots, waiting at the backend.
    let holders: Vec<_> = (0..2)
        .map(|_| {
            let http = http.clone();
            tokio::spawn(async move { issue_token(&http).await })
        })
        .collect();
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(5), arrived.recv())
            .await
            .expect("both holders reach the backend")
            .expect("arrival");
    }
    let before = captured.lines().len();
    let shedding_began = Instant::now();
    const SHED: u64 = 300;
    for _ in 0..SHED {
        assert_eq!(issue_token(&http).await, Answer::Shed);
    }
    gate.add_permits(2);
    for holder in holders {
        assert_eq!(holder.await.unwrap(), Answer::Served);
    }

    // The summaries add up to every shed request...
    let summaries = || -> Vec<String> {
        captured.lines()[before..]
            .iter()
            .filter(|line| field(line, "shed").is_some_and(|n| n > 0))
            .cloned()
            .collect()
    };
    eventually(
        Duration::from_secs(10),
        "summaries of all shed requests",
        || {
            let total: u64 = summaries().iter().filter_map(|l| field(l, "shed")).sum();
            async move { total == SHED }
        },
    )
    .await;
    let elapsed = shedding_began.elapsed();
    let lines = summaries();
    eprintln!("{lines:#?}");
    // ...in at most one line per interval that had shedding in it,
    let intervals = u32::try_from(elapsed.as_millis() / interval.as_millis()).unwrap() + 1;
    assert!(
        lines.len() <= usize::try_from(intervals).unwrap(),
        "{} summaries in {elapsed:?}",
        lines.len()
    );
    assert!(lines[0].contains(&format!(
        "shed {} requests",
        field(&lines[0], "shed").unwrap()
    )));
    assert!(lines[0].contains("(limit now 2)"), "{}", lines[0]);
    // ...and nothing else was logged for them: no line per request, at no level.
    let others: Vec<String> = captured.lines()[before..]
        .iter()
        .filter(|line| field(line, "shed").is_none())
        .cloned()
        .collect();
    assert!(others.is_empty(), "{others:#?}");
    assert_eq!(
        metric(
            metrics,
            "http_server_rejected_total",
            &[("reason", "overloaded")]
        )
        .await,
        300.0
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_backend_outage_is_one_summary_of_503s_not_an_error_line_per_request() {
    let captured = Captured::default();
    let _guard = captured.install();
    let (addr, _) = gateway(support::NO_BACKEND, &["--failure-log-interval-ms=300"]).await;
    let http = HttpClient::for_addr(addr);
    let before = captured.lines().len();
    const FAILED: u64 = 50;
    for _ in 0..FAILED {
        let response = http
            .post("/queue/issue-token")
            .json(r#"{"userId": 7}"#)
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status, 503);
    }
    let unavailable = || -> u64 {
        captured.lines()[before..]
            .iter()
            .filter_map(|line| field(line, "unavailable"))
            .sum()
    };
    eventually(Duration::from_secs(10), "a summary of the 503s", || {
        let n = unavailable();
        async move { n == FAILED }
    })
    .await;
    let errors: Vec<String> = captured.lines()[before..]
        .iter()
        .filter(|line| line.contains("ERROR"))
        .cloned()
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}
