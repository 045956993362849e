//! The balanced channel against real gRPC servers on port 0 (kit's own server builder with
//! grpc.health.v1): calls spread over replicas, a stopped replica is passed over, a DNS target
//! follows its name, connections are replaced past their age, and failed calls are told apart
//! by how far they got.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use futures::FutureExt;
use kit::grpc::{
    ChannelTimeouts, Discovery, ServerLimits, Target, TracedChannel,
    retry::{Reach, reach},
};
use tonic::transport::server::TcpConnectInfo;
use tonic_health::{
    ServingStatus,
    pb::{HealthCheckRequest, health_client::HealthClient},
};

/// The metadata key that marks a test's own calls (a replica's probe is not counted).
const TEST_CALL: &str = "x-test-call";
const DEADLINE: Duration = Duration::from_secs(5);

/// What a replica saw: the test's calls and the client connections they came on.
#[derive(Default)]
struct Seen {
    calls: AtomicUsize,
    peers: Mutex<HashSet<SocketAddr>>,
}

/// A layer on the real server that counts the test's calls (not a stand-in for anything: the
/// server answers them itself).
#[derive(Clone)]
struct Counting(Arc<Seen>);

impl<S> tower::Layer<S> for Counting {
    type Service = Counted<S>;
    fn layer(&self, inner: S) -> Counted<S> {
        Counted(inner, self.0.clone())
    }
}

#[derive(Clone)]
struct Counted<S>(S, Arc<Seen>);

impl<S, B> tower::Service<http::Request<B>> for Counted<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> S::Future {
        if request.headers().contains_key(TEST_CALL) {
            self.1.calls.fetch_add(1, Ordering::SeqCst);
            if let Some(peer) = request
                .extensions()
                .get::<TcpConnectInfo>()
                .and_then(TcpConnectInfo::remote_addr)
            {
                self.1.peers.lock().unwrap().insert(peer);
            }
        }
        self.0.call(request)
    }
}

/// A real gRPC server (health service, SERVING) on `addr`.
struct Replica {
    addr: SocketAddr,
    seen: Arc<Seen>,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Replica {
    async fn start(addr: SocketAddr) -> Self {
        Self::start_with(addr, ServerLimits::default()).await
    }

    async fn start_with(addr: SocketAddr, limits: ServerLimits) -> Self {
        let (addr, incoming) = kit::grpc::bind(addr).await.expect("bind");
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("", ServingStatus::Serving)
            .await;
        reporter
            .set_service_status(kit::grpc::LIVENESS, ServingStatus::Serving)
            .await;
        let seen = Arc::new(Seen::default());
        let router = kit::grpc::server(limits)
            .layer(Counting(seen.clone()))
            .add_service(health);
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let served = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            seen,
            stop,
            served,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn calls(&self) -> usize {
        self.seen.calls.load(Ordering::SeqCst)
    }

    /// Stops serving (a graceful stop, as on SIGTERM) and waits until it has.
    async fn stop(self) -> SocketAddr {
        let _ = self.stop.send(());
        self.served.await.expect("join").expect("served");
        self.addr
    }
}

fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn timeouts() -> ChannelTimeouts {
    ChannelTimeouts {
        connect: Duration::from_secs(1),
        request: DEADLINE,
    }
}

/// One health check marked as the test's, as a client makes it: retried when that is safe,
/// here as a call that is not idempotent (sent again only when it never reached a server).
async fn call(channel: &TracedChannel) -> Result<(), tonic::Status> {
    kit::grpc::retrying(false, DEADLINE, |left| {
        let mut request = kit::grpc::request(
            HealthCheckRequest {
                service: String::new(),
            },
            left,
        );
        request
            .metadata_mut()
            .insert(TEST_CALL, tonic::metadata::MetadataValue::from_static("1"));
        let mut client = HealthClient::new(channel.clone());
        async move { client.check(request).await.map(|_| ()) }
    })
    .await
}

/// Calls until `done` holds, failing the test on any failed call or after 20 s.
async fn call_until(channel: &TracedChannel, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within 20 s"
        );
        call(channel).await.expect("every call succeeds");
    }
}

#[tokio::test]
async fn calls_over_a_list_of_two_replicas_reach_both() {
    let (a, b) = (Replica::start(local()).await, Replica::start(local()).await);
    let channel = kit::grpc::channel(&format!("{},{}", a.url(), b.url()), timeouts()).unwrap();
    for _ in 0..40 {
        call(&channel).await.expect("call");
    }
    assert_eq!(a.calls() + b.calls(), 40);
    assert!(
        a.calls() > 0 && b.calls() > 0,
        "{} / {}",
        a.calls(),
        b.calls()
    );
}

#[tokio::test]
async fn after_a_replica_stops_every_new_call_succeeds_on_the_other_and_it_is_used_again_once_back()
{
    let (a, b) = (Replica::start(local()).await, Replica::start(local()).await);
    let channel = kit::grpc::channel(&format!("{},{}", a.url(), b.url()), timeouts()).unwrap();
    call_until(&channel, "both serve", || a.calls() > 0 && b.calls() > 0).await;

    let a_addr = a.stop().await;
    let before = b.calls();
    for _ in 0..50 {
        call(&channel).await.expect("a new call succeeds");
    }
    assert_eq!(b.calls() - before, 50, "the other replica took every call");

    // Back on the same address: the probe finds it and calls reach it again.
    let a = Replica::start(a_addr).await;
    call_until(&channel, "the restarted replica serves", || a.calls() > 0).await;
}

#[tokio::test]
async fn in_a_rolling_restart_the_replica_back_takes_the_calls_when_the_other_stops_before_its_probe_noticed()
 {
    let (mut first, mut second) = (Replica::start(local()).await, Replica::start(local()).await);
    let channel =
        kit::grpc::channel(&format!("{},{}", first.url(), second.url()), timeouts()).unwrap();
    call_until(&channel, "both serve", || {
        first.calls() > 0 && second.calls() > 0
    })
    .await;
    // Each round restarts one replica, then stops the other. The one restarted is marked down
    // by the calls that found it stopped and is back at once, before its probe looks again
    // (0.1 s after its failure): when the other stops, every replica is marked down, and the
    // call must go to the one back — it failed longest ago — not to the one that just
    // failed (three attempts over two replicas chosen at random missed it one time in four).
    for round in 0..12 {
        let addr = first.stop().await;
        for _ in 0..10 {
            call(&channel).await.expect("the other replica serves");
        }
        first = Replica::start(addr).await;
        let other = second.stop().await;
        call(&channel)
            .await
            .unwrap_or_else(|status| panic!("round {round}: {status:?}"));
        assert!(first.calls() > 0, "round {round}: the replica back served");
        second = Replica::start(other).await;
        let before = second.calls();
        call_until(&channel, "the other serves again", || {
            second.calls() > before
        })
        .await;
        std::mem::swap(&mut first, &mut second);
    }
}

#[tokio::test]
async fn with_every_replica_down_a_call_fails_at_once_with_unavailable() {
    let (a, b) = (Replica::start(local()).await, Replica::start(local()).await);
    let channel = kit::grpc::channel(&format!("{},{}", a.url(), b.url()), timeouts()).unwrap();
    call_until(&channel, "both serve", || a.calls() > 0 && b.calls() > 0).await;
    a.stop().await;
    b.stop().await;
    for _ in 0..3 {
        let status = call(&channel).await.expect_err("nothing serves");
        // Not DEADLINE_EXCEEDED: nobody waited for a replica to come back.
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert_eq!(reach(&status), Reach::NotSent, "{status:?}");
    }
}

#[tokio::test]
async fn a_dns_target_follows_what_its_name_resolves_to() {
    let (a, b) = (Replica::start(local()).await, Replica::start(local()).await);
    let answer = Arc::new(Mutex::new(vec![a.addr]));
    let resolved = answer.clone();
    let discovery = Discovery {
        refresh: Duration::from_millis(50),
        resolve: Arc::new(move |host, port| {
            assert_eq!((host.as_str(), port), ("reservation.test", 7));
            let addrs = resolved.lock().unwrap().clone();
            async move { Ok(addrs) }.boxed()
        }),
    };
    let target = Target::parse("dns:///reservation.test:7").unwrap();
    let channel = kit::grpc::channel_to(&target, timeouts(), discovery);
    call_until(&channel, "the first address serves", || a.calls() > 0).await;
    assert_eq!(b.calls(), 0, "b is not resolved yet");

    *answer.lock().unwrap() = vec![a.addr, b.addr];
    call_until(&channel, "the added address serves", || b.calls() > 0).await;

    // `a` no longer resolved: once out of the balancer it gets no more calls.
    *answer.lock().unwrap() = vec![b.addr];
    let mut last = a.calls();
    let mut quiet = 0;
    call_until(&channel, "the removed address is left alone", || {
        let now = a.calls();
        quiet = if now == last { quiet + 1 } else { 0 };
        last = now;
        quiet >= 50
    })
    .await;
}

#[tokio::test]
async fn a_dns_target_resolves_localhost_with_the_system_resolver_and_every_address_serves() {
    // What this machine's resolver says localhost is (127.0.0.1, and ::1 where /etc/hosts
    // says so); a server on every one of those addresses, on one port.
    let first = Replica::start(local()).await;
    let port = first.addr.port();
    let mut addresses: Vec<SocketAddr> = tokio::net::lookup_host(("localhost", port))
        .await
        .expect("localhost resolves")
        .collect();
    addresses.sort();
    addresses.dedup();
    assert!(addresses.contains(&first.addr), "{addresses:?}");
    let first_addr = first.addr;
    let mut replicas = vec![first];
    for addr in addresses.iter().filter(|addr| **addr != first_addr) {
        replicas.push(Replica::start(*addr).await);
    }
    let channel = kit::grpc::channel(&format!("dns:///localhost:{port}"), timeouts()).unwrap();
    call_until(&channel, "every address of localhost serves", || {
        replicas.iter().all(|replica| replica.calls() > 0)
    })
    .await;
}

#[tokio::test]
async fn connections_past_their_max_age_are_replaced_and_every_call_succeeds() {
    let limits = ServerLimits {
        max_connection_age: Some(Duration::from_millis(200)),
        ..ServerLimits::default()
    };
    let replica = Replica::start_with(local(), limits).await;
    let channel = kit::grpc::channel(&replica.url(), timeouts()).unwrap();
    // Four connections in turn: three were closed by the server for their age.
    call_until(&channel, "the connection is replaced three times", || {
        replica.seen.peers.lock().unwrap().len() >= 4
    })
    .await;
}

#[tokio::test]
async fn a_refused_connection_is_not_sent_and_a_status_from_the_server_is_an_answer() {
    let replica = Replica::start(local()).await;
    let channel = kit::grpc::channel(&replica.url(), timeouts()).unwrap();
    let unknown = HealthClient::new(channel)
        .check(kit::grpc::request(
            HealthCheckRequest {
                service: "no.such.Service".into(),
            },
            DEADLINE,
        ))
        .await
        .expect_err("an unknown service is NOT_FOUND");
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    assert_eq!(reach(&unknown), Reach::Answered);

    let addr = replica.stop().await;
    let channel = kit::grpc::channel(&format!("http://{addr}"), timeouts()).unwrap();
    let refused = HealthClient::new(channel)
        .check(kit::grpc::request(HealthCheckRequest::default(), DEADLINE))
        .await
        .expect_err("nothing listens");
    assert_eq!(refused.code(), tonic::Code::Unavailable);
    assert_eq!(reach(&refused), Reach::NotSent);
}

#[tokio::test]
async fn a_call_cut_off_by_its_server_is_interrupted() {
    // A server that reads the call and then drops the connection without answering, as a
    // replica killed mid-call does.
    let listener = tokio::net::TcpListener::bind(local()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut read = vec![0u8; 1024];
                let _ = socket.read(&mut read).await;
                // Dropped with unread data: the peer sees a reset.
            });
        }
    });
    let channel = kit::grpc::channel(&format!("http://{addr}"), timeouts()).unwrap();
    let cut = HealthClient::new(channel)
        .check(kit::grpc::request(HealthCheckRequest::default(), DEADLINE))
        .await
        .expect_err("no answer");
    assert_eq!(reach(&cut), Reach::Interrupted, "{cut:?}");
    assert!(Reach::Interrupted.allows_retry(true));
    assert!(!Reach::Interrupted.allows_retry(false));
}
