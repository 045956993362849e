//! A channel balanced per call over a service's replicas (tower's power-of-two-choices balancer
//! over the replicas' in-flight calls), fed by a discovery source: a fixed list, or a DNS name
//! resolved again every few seconds (see [`super::target`]).
//!
//! Each replica is a lazily connecting tonic channel with the shared connect and call
//! deadlines and keep-alives. A replica whose call fails at the transport (refused, reset,
//! unreachable) is marked down: the balancer stops choosing it, and a probe (a grpc.health.v1
//! call, any answer will do) asks it again after 0.1 s, then after twice as long each time up
//! to 2 s; it is chosen again once it answers. While every replica is down, a call goes to the
//! one last seen failing longest ago (by a call or a probe): it may well be back before its
//! probe has noticed — in a rolling restart the replica that was restarted a moment ago, while
//! the next one stops — and one that fails again goes to the back, so each attempt of a call
//! tries another replica, and a call fails at once (UNAVAILABLE) rather than waiting for its
//! deadline when none answers.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use futures::{
    FutureExt, TryFutureExt,
    future::{BoxFuture, Either, MapErr},
    task::AtomicWaker,
};
use tonic::{body::Body, transport::Endpoint};
use tower::{
    Service,
    balance::p2c::Balance,
    buffer::Buffer,
    discover::Change,
    load::{CompleteOnResponse, PendingRequests},
    util::BoxService,
};

use super::{
    ChannelTimeouts,
    retry::{Reach, of_error},
    target::Target,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Request = http::Request<Body>;
type Response = http::Response<Body>;
type CallFuture = BoxFuture<'static, Result<Response, BoxError>>;

/// How often a DNS target is resolved again: the TTL Kubernetes' DNS gives a headless
/// Service's records, so a new pod gets calls within about this long of being ready.
pub const DNS_REFRESH: Duration = Duration::from_secs(5);
/// Calls waiting for a replica at most (beyond it the caller is told at once).
const BUFFER: usize = 1024;
const PROBE_FIRST: Duration = Duration::from_millis(100);
const PROBE_MAX: Duration = Duration::from_secs(2);

/// How a DNS target's name is resolved, and how often.
#[derive(Clone)]
pub struct Discovery {
    pub refresh: Duration,
    pub resolve: Resolve,
}

/// Resolves a name and port to addresses.
pub type Resolve =
    Arc<dyn Fn(String, u16) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>> + Send + Sync>;

impl Discovery {
    /// The system's resolver (getaddrinfo: /etc/hosts, then the DNS servers of
    /// /etc/resolv.conf with its search domains), every [`DNS_REFRESH`].
    pub fn system() -> Self {
        Self {
            refresh: DNS_REFRESH,
            resolve: Arc::new(|host, port| {
                async move {
                    Ok(tokio::net::lookup_host((host.as_str(), port))
                        .await?
                        .collect())
                }
                .boxed()
            }),
        }
    }
}

/// A gRPC channel to one service: tonic's own channel for a single URL, balanced per call
/// otherwise. Cheap to clone; every clone shares the connections.
#[derive(Clone)]
pub struct Channel(Inner);

#[derive(Clone)]
enum Inner {
    Single(tonic::transport::Channel),
    Balanced(Balanced),
}

#[derive(Clone)]
struct Balanced {
    buffer: Buffer<Request, CallFuture>,
    replicas: Arc<Replicas>,
    /// The longest a call waits for a replica to take it.
    timeout: Duration,
}

impl Channel {
    /// A channel to `target`; a DNS target is resolved with `discovery`. Must be called within
    /// a Tokio runtime (the balancer and the resolution run as tasks).
    pub fn new(target: &Target, timeouts: ChannelTimeouts, discovery: Discovery) -> Self {
        let urls = match target {
            Target::Urls(urls) if urls.len() == 1 => {
                let channel = endpoint(urls[0].clone(), timeouts).connect_lazy();
                return Self(Inner::Single(channel));
            }
            Target::Urls(urls) => Some(urls.clone()),
            Target::Dns { .. } => None,
        };
        let replicas = Arc::new(Replicas {
            target: target.to_string(),
            up: AtomicUsize::new(0),
            failures: AtomicU64::new(0),
            members: Mutex::new(HashMap::new()),
            resolved: AtomicBool::new(false),
        });
        let (changes, discovered) = tokio::sync::mpsc::unbounded_channel();
        let mut discovered = discovered;
        let discover = futures::stream::poll_fn(move |cx| {
            discovered
                .poll_recv(cx)
                .map(|change| change.map(Ok::<_, Infallible>))
        });
        let balance = Balance::new(discover);
        let (buffer, worker) = Buffer::pair(BoxService::new(balance), BUFFER);
        tokio::spawn(worker);
        let members = Members {
            replicas: replicas.clone(),
            changes,
            timeouts,
        };
        match (urls, target) {
            (Some(urls), _) => {
                for url in urls {
                    members.insert(url.to_string(), url);
                }
                replicas.resolved.store(true, Ordering::SeqCst);
            }
            (None, Target::Dns { host, port }) => {
                tokio::spawn(members.follow(host.clone(), *port, discovery));
            }
            (None, Target::Urls(_)) => {}
        }
        Self(Inner::Balanced(Balanced {
            buffer,
            replicas,
            timeout: timeouts.request,
        }))
    }
}

/// The endpoint of one replica, with the shared deadlines and keep-alives.
fn endpoint(uri: http::Uri, timeouts: ChannelTimeouts) -> Endpoint {
    Endpoint::from(uri)
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.request)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true)
}

type SingleFuture =
    MapErr<tonic::transport::channel::ResponseFuture, fn(tonic::transport::Error) -> BoxError>;

impl Service<Request> for Channel {
    type Response = Response;
    type Error = BoxError;
    type Future = Either<SingleFuture, CallFuture>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match &mut self.0 {
            Inner::Single(channel) => channel.poll_ready(cx).map_err(Into::into),
            Inner::Balanced(balanced) => balanced.buffer.poll_ready(cx),
        }
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match &mut self.0 {
            Inner::Single(channel) => {
                let into: fn(tonic::transport::Error) -> BoxError = Into::into;
                Either::Left(channel.call(request).map_err(into))
            }
            Inner::Balanced(balanced) => {
                if balanced.replicas.none_known() {
                    let error = no_replica(&balanced.replicas.target);
                    return Either::Right(futures::future::ready(Err(error)).boxed());
                }
                let timeout = balanced.timeout;
                let call = balanced.buffer.call(request);
                Either::Right(
                    async move {
                        match tokio::time::timeout(timeout, call).await {
                            Ok(answer) => answer,
                            Err(_) => Err(tonic::Status::deadline_exceeded(
                                "no replica took the call in time",
                            )
                            .into()),
                        }
                    }
                    .boxed(),
                )
            }
        }
    }
}

/// The error of a call made when no replica is known: a connection error, so it reads as
/// UNAVAILABLE and as not sent.
fn no_replica(target: &str) -> BoxError {
    let error = std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("no replica of {target} is known"),
    );
    Box::new(tonic::ConnectError(Box::new(error)))
}

/// The replicas in the balancer and which of them are up.
struct Replicas {
    target: String,
    /// How many members are up.
    up: AtomicUsize,
    /// Transport failures seen so far, calls' and probes': each failure's number orders the
    /// replicas by when they were last seen failing.
    failures: AtomicU64,
    /// Every replica in the balancer, by key (its URL).
    members: Mutex<HashMap<String, Arc<Health>>>,
    /// False until the target was first resolved (a DNS target starts with no replica).
    resolved: AtomicBool,
}

/// One replica's state, shared by its service in the balancer and its probe.
struct Health {
    key: String,
    /// The replica's channel, for the probe.
    channel: tonic::transport::Channel,
    up: AtomicBool,
    /// The number of its latest transport failure (0: none yet).
    last_failed: AtomicU64,
    /// Out of the balancer: its probe stops.
    removed: AtomicBool,
    /// The balancer's task, waiting for this replica to become ready.
    waker: AtomicWaker,
}

impl Replicas {
    fn none_known(&self) -> bool {
        self.resolved.load(Ordering::SeqCst) && self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Health>>> {
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A replica answered: it is chosen again.
    fn mark_up(&self, health: &Health) {
        if health.up.load(Ordering::SeqCst) {
            return;
        }
        let _members = self.lock();
        if health.removed.load(Ordering::SeqCst) || health.up.swap(true, Ordering::SeqCst) {
            return;
        }
        self.up.fetch_add(1, Ordering::SeqCst);
        tracing::info!(target = %self.target, replica = %health.key, "replica answers again");
        health.waker.wake();
    }

    /// A replica failed at the transport (a call or its probe): true when it was up until
    /// now. While none is up, the others are woken: which of them takes calls depends on who
    /// failed last.
    fn mark_down(&self, health: &Health) -> bool {
        let members = self.lock();
        let failure = self.failures.fetch_add(1, Ordering::SeqCst) + 1;
        health.last_failed.store(failure, Ordering::SeqCst);
        let was_up =
            !health.removed.load(Ordering::SeqCst) && health.up.swap(false, Ordering::SeqCst);
        let left = if was_up {
            let left = self.up.fetch_sub(1, Ordering::SeqCst) - 1;
            tracing::warn!(target = %self.target, replica = %health.key, up = left, "replica unreachable; calls go to the others until it answers");
            left
        } else {
            self.up.load(Ordering::SeqCst)
        };
        if left == 0 {
            members.values().for_each(|member| member.waker.wake());
        }
        was_up
    }

    /// Whether `health` should take no call now: it is down and another replica is up, or
    /// every replica is down and another was last seen failing before it.
    fn passed_over(&self, health: &Health) -> bool {
        if health.up.load(Ordering::SeqCst) {
            return false;
        }
        if self.up.load(Ordering::SeqCst) > 0 {
            return true;
        }
        let mine = health.last_failed.load(Ordering::SeqCst);
        self.lock().values().any(|other| {
            !other.up.load(Ordering::SeqCst) && other.last_failed.load(Ordering::SeqCst) < mine
        })
    }
}

/// What adds replicas to the balancer and takes them out.
struct Members {
    replicas: Arc<Replicas>,
    changes: tokio::sync::mpsc::UnboundedSender<Change<String, PendingRequests<Replica>>>,
    timeouts: ChannelTimeouts,
}

impl Members {
    fn insert(&self, key: String, uri: http::Uri) {
        let channel = endpoint(uri, self.timeouts).connect_lazy();
        let health = Arc::new(Health {
            key: key.clone(),
            channel: channel.clone(),
            up: AtomicBool::new(true),
            last_failed: AtomicU64::new(0),
            removed: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        });
        {
            let mut members = self.replicas.lock();
            if members.contains_key(&key) {
                return;
            }
            members.insert(key.clone(), health.clone());
            self.replicas.up.fetch_add(1, Ordering::SeqCst);
        }
        let replica = Replica {
            channel,
            health,
            replicas: self.replicas.clone(),
            probe_deadline: self.timeouts.connect,
        };
        let service = PendingRequests::new(replica, CompleteOnResponse::default());
        // The balancer is gone only when every clone of the channel is: nothing to tell.
        let _ = self.changes.send(Change::Insert(key, service));
    }

    fn remove(&self, key: &str) {
        {
            let mut members = self.replicas.lock();
            let Some(health) = members.remove(key) else {
                return;
            };
            health.removed.store(true, Ordering::SeqCst);
            if health.up.swap(false, Ordering::SeqCst)
                && self.replicas.up.fetch_sub(1, Ordering::SeqCst) == 1
            {
                members.values().for_each(|member| member.waker.wake());
            }
        }
        let _ = self.changes.send(Change::Remove(key.to_owned()));
    }

    /// Resolves `host` every `discovery.refresh` and makes the balancer's replicas its
    /// addresses, until the channel is dropped. A failed resolution keeps the replicas known.
    async fn follow(self, host: String, port: u16, discovery: Discovery) {
        let mut failing = false;
        loop {
            let resolved = tokio::time::timeout(
                self.timeouts.connect.max(Duration::from_secs(1)),
                (discovery.resolve)(host.clone(), port),
            )
            .await;
            match resolved {
                Ok(Ok(addrs)) => {
                    if failing {
                        tracing::info!(target = %self.replicas.target, "resolved again");
                        failing = false;
                    }
                    self.resolved_to(&addrs);
                }
                Ok(Err(error)) => {
                    if !failing {
                        tracing::warn!(target = %self.replicas.target, %error, "resolution failed; the replicas known stay");
                        failing = true;
                    }
                }
                Err(_) => {
                    if !failing {
                        tracing::warn!(target = %self.replicas.target, "resolution timed out; the replicas known stay");
                        failing = true;
                    }
                }
            }
            self.replicas.resolved.store(true, Ordering::SeqCst);
            tokio::time::sleep(discovery.refresh).await;
            if self.changes.is_closed() {
                return;
            }
        }
    }

    /// Makes the replicas exactly `addrs`.
    fn resolved_to(&self, addrs: &[SocketAddr]) {
        let wanted: HashMap<String, SocketAddr> = addrs
            .iter()
            .map(|addr| (format!("http://{addr}"), *addr))
            .collect();
        let gone: Vec<String> = self
            .replicas
            .lock()
            .keys()
            .filter(|key| !wanted.contains_key(*key))
            .cloned()
            .collect();
        for key in gone {
            tracing::info!(target = %self.replicas.target, replica = %key, "replica no longer resolved");
            self.remove(&key);
        }
        for (key, addr) in wanted {
            if self.replicas.lock().contains_key(&key) {
                continue;
            }
            match http::Uri::try_from(key.as_str()) {
                Ok(uri) => {
                    tracing::info!(target = %self.replicas.target, replica = %key, "replica resolved");
                    self.insert(key, uri);
                }
                Err(error) => {
                    tracing::warn!(%addr, %error, "a resolved address makes no URL");
                }
            }
        }
    }
}

/// One replica in the balancer: its channel, and whether it is up.
struct Replica {
    channel: tonic::transport::Channel,
    health: Arc<Health>,
    replicas: Arc<Replicas>,
    probe_deadline: Duration,
}

impl Service<Request> for Replica {
    type Response = Response;
    type Error = BoxError;
    type Future = CallFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.replicas.passed_over(&self.health) {
            self.health.waker.register(cx.waker());
            // Again, after registering: it may have come up, or the last other one gone down.
            if self.replicas.passed_over(&self.health) {
                return Poll::Pending;
            }
        }
        self.channel.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request) -> CallFuture {
        let call = self.channel.call(request);
        let health = self.health.clone();
        let replicas = self.replicas.clone();
        let probe_deadline = self.probe_deadline;
        async move {
            let answer = call.await;
            match &answer {
                Ok(_) => replicas.mark_up(&health),
                Err(error) if of_error(error) != Reach::Answered => {
                    if replicas.mark_down(&health) {
                        tokio::spawn(probe(replicas, health, probe_deadline));
                    }
                }
                Err(_) => {}
            }
            answer.map_err(Into::into)
        }
        .boxed()
    }
}

/// Asks a replica that is down whether it answers, waiting longer each time, until it does
/// (it is up again) or it leaves the balancer.
async fn probe(replicas: Arc<Replicas>, health: Arc<Health>, deadline: Duration) {
    let mut wait = PROBE_FIRST;
    loop {
        tokio::time::sleep(wait).await;
        if health.removed.load(Ordering::SeqCst) || health.up.load(Ordering::SeqCst) {
            return;
        }
        if answers(health.channel.clone(), deadline).await {
            replicas.mark_up(&health);
            return;
        }
        replicas.mark_down(&health);
        wait = (wait * 2).min(PROBE_MAX);
    }
}

/// True when the server behind `channel` answers a health check within `deadline`, whatever
/// it says (a status the server sent carries no transport error).
async fn answers(channel: tonic::transport::Channel, deadline: Duration) -> bool {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let request = super::request(
        HealthCheckRequest {
            service: super::LIVENESS.to_owned(),
        },
        deadline,
    );
    let mut client = HealthClient::new(channel);
    match tokio::time::timeout(deadline, client.check(request)).await {
        Ok(Ok(_)) => true,
        Ok(Err(status)) => std::error::Error::source(&status).is_none(),
        Err(_) => false,
    }
}
