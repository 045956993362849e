//! The waiting room's Redis store: every operation is one Lua script, one round trip, atomic.
//! Each call has a deadline covering both the pool checkout and the script.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use deadpool_redis::{Pool, Runtime};
use redis::{FromRedisValue, Script, ScriptInvocation};

use crate::{
    domain::{QueueId, Standing, Token, TokenStatus, UserId, Verdict},
    error::QueueError,
};

/// Time constant of the measured-outflow average behind ETAs.
const OUTFLOW_TAU_MS: u64 = 10_000;
/// Most tokens expired, dropped or admitted by one admission step (bounds script run time).
pub const MAX_BATCH: u64 = 1_000;
/// Waiting tokens' keys outlive the grace by this much, as a safety net behind the sweeper.
const WAITING_KEY_SLACK: Duration = Duration::from_secs(60);

macro_rules! script {
    ($name:literal) => {
        Script::new(concat!(
            include_str!("../lua/common.lua"),
            "\n",
            include_str!(concat!("../lua/", $name, ".lua"))
        ))
    };
}

struct Scripts {
    issue: Script,
    status: Script,
    validate: Script,
    release: Script,
    admit: Script,
    lease: Script,
}

impl Scripts {
    fn load() -> Self {
        Self {
            issue: script!("issue"),
            status: script!("status"),
            validate: script!("validate"),
            release: script!("release"),
            admit: script!("admit"),
            lease: script!("lease"),
        }
    }
}

/// What the waiting room is tuned to.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Admissions per second per queue; 0 = unlimited (cap only).
    pub admission_rate: f64,
    /// Concurrently active users per queue; 0 = unlimited (rate only).
    pub active_cap: u32,
    pub active_ttl: Duration,
    pub waiting_grace: Duration,
}

impl Policy {
    /// When a waiter should poll again: a tenth of its expected wait, at least a second, and
    /// never more than a third of the grace (polling is the heartbeat: two lost polls in a row
    /// still keep the place). The back of a long line polls rarely, so 50,000 waiters cost
    /// thousands of requests per second rather than tens of thousands.
    pub fn poll_after(&self, standing: &Standing) -> Duration {
        match standing {
            Standing::Active { .. } => Duration::ZERO,
            Standing::Waiting { eta_seconds, .. } => {
                let ceiling = (self.waiting_grace / 3).max(Duration::from_secs(1));
                Duration::from_secs(eta_seconds / 10).clamp(Duration::from_secs(1), ceiling)
            }
        }
    }

    /// The rate an ETA assumes before any outflow has been measured.
    fn assumed_rate(&self) -> f64 {
        if self.admission_rate > 0.0 {
            self.admission_rate
        } else {
            f64::from(self.active_cap) / self.active_ttl.as_secs_f64().max(1.0)
        }
    }
}

/// Where "now" comes from: the Redis server (shared by all replicas), or a hand-set clock
/// (tests move time without sleeping).
#[derive(Clone, Debug)]
pub enum Clock {
    Redis,
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// A manual clock starting at `start_ms`.
    pub fn manual(start_ms: i64) -> (Self, Arc<AtomicI64>) {
        let now = Arc::new(AtomicI64::new(start_ms));
        (Self::Manual(now.clone()), now)
    }

    /// The script argument: 0 tells the script to read the Redis server's clock.
    fn arg(&self) -> i64 {
        match self {
            Self::Redis => 0,
            Self::Manual(now) => now.load(Ordering::SeqCst),
        }
    }
}

/// One admission step's outcome for one queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Admission {
    pub admitted: u64,
    pub expired: u64,
    pub dropped: u64,
    pub waiting: u64,
    pub active: u64,
}

impl Admission {
    /// Whether one of the step's batches came back full, so the same room may have more to do
    /// at once (more to expire or drop, or more to admit than one batch).
    pub fn batch_full(&self) -> bool {
        self.admitted >= MAX_BATCH || self.expired >= MAX_BATCH || self.dropped >= MAX_BATCH
    }

    /// Adds `next`'s counts to these; waiting and active become `next`'s (the later state).
    pub fn followed_by(self, next: Admission) -> Admission {
        Admission {
            admitted: self.admitted + next.admitted,
            expired: self.expired + next.expired,
            dropped: self.dropped + next.dropped,
            waiting: next.waiting,
            active: next.active,
        }
    }
}

#[derive(Clone)]
pub struct QueueStore {
    pool: Pool,
    prefix: Arc<str>,
    policy: Arc<Policy>,
    scripts: Arc<Scripts>,
    clock: Clock,
    deadline: Duration,
}

impl QueueStore {
    /// A store on `redis_url` with `pool_size` connections; nothing connects until first use.
    pub fn connect(
        redis_url: &str,
        pool_size: usize,
        prefix: &str,
        policy: Policy,
        deadline: Duration,
    ) -> Result<Self, QueueError> {
        let mut config = deadpool_redis::Config::from_url(redis_url);
        let mut pool_config = deadpool_redis::PoolConfig::new(pool_size);
        pool_config.timeouts.wait = Some(deadline);
        pool_config.timeouts.create = Some(deadline);
        pool_config.timeouts.recycle = Some(deadline);
        config.pool = Some(pool_config);
        let pool = config
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|error| QueueError::Protocol(format!("bad Redis configuration: {error}")))?;
        Ok(Self {
            pool,
            prefix: prefix.into(),
            policy: Arc::new(policy),
            scripts: Arc::new(Scripts::load()),
            clock: Clock::Redis,
            deadline,
        })
    }

    /// The same store reading time from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The trailing arguments of the scripts that keep a waiter alive and estimate its wait:
    /// grace ms, waiting key ttl ms, assumed rate, outflow time constant ms.
    fn waiting_args(&self) -> (u64, u64, f64, u64) {
        (
            millis(self.policy.waiting_grace),
            millis(self.policy.waiting_grace + WAITING_KEY_SLACK),
            self.policy.assumed_rate(),
            OUTFLOW_TAU_MS,
        )
    }

    async fn run<T: FromRedisValue>(
        &self,
        invocation: &mut ScriptInvocation<'_>,
    ) -> Result<T, QueueError> {
        let call = async {
            let mut connection = self.pool.get().await?;
            Ok::<T, QueueError>(invocation.invoke_async(&mut connection).await?)
        };
        tokio::time::timeout(self.deadline, call)
            .await
            .map_err(|_| QueueError::Timeout)?
    }

    /// The user's live token in `queue`: the existing one, or a new one at the back.
    #[tracing::instrument(name = "redis issue.lua", skip_all, fields(db.system = "redis", db.operation = "EVALSHA", otel.kind = "client"))]
    pub async fn issue(&self, user: UserId, queue: QueueId) -> Result<TokenStatus, QueueError> {
        let fresh = Token::random();
        let (token, state, position, eta, until): (String, String, u64, u64, i64) = self
            .run(
                self.scripts
                    .issue
                    .arg(&*self.prefix)
                    .arg(queue.key())
                    .arg(user.get())
                    .arg(fresh.to_string())
                    .arg(self.clock.arg())
                    .arg(self.waiting_args()),
            )
            .await?;
        Ok(TokenStatus {
            token: Token::parse(&token).map_err(|_| QueueError::Protocol(token.clone()))?,
            user,
            queue,
            standing: standing(&state, position, eta, until)?,
        })
    }

    /// Position and ETA of a waiting token (and a heartbeat), or an active token's expiry.
    #[tracing::instrument(name = "redis status.lua", skip_all, fields(db.system = "redis", db.operation = "EVALSHA", otel.kind = "client"))]
    pub async fn status(&self, token: Token) -> Result<TokenStatus, QueueError> {
        let (outcome, state, position, eta, until, user, queue): (
            String,
            String,
            u64,
            u64,
            i64,
            String,
            String,
        ) = self
            .run(
                self.scripts
                    .status
                    .arg(&*self.prefix)
                    .arg(token.to_string())
                    .arg(self.clock.arg())
                    .arg(self.waiting_args()),
            )
            .await?;
        match outcome.as_str() {
            "OK" => Ok(TokenStatus {
                token,
                user: stored_user(&user)?,
                queue: stored_queue(&queue)?,
                standing: standing(&state, position, eta, until)?,
            }),
            "NOT_FOUND" => Err(QueueError::TokenNotFound),
            "EXPIRED" => Err(QueueError::TokenExpired),
            other => Err(QueueError::Protocol(format!("status outcome {other:?}"))),
        }
    }

    /// Whether `token` is ACTIVE and bound to `user`.
    #[tracing::instrument(name = "redis validate.lua", skip_all, fields(db.system = "redis", db.operation = "EVALSHA", otel.kind = "client"))]
    pub async fn validate(&self, token: Token, user: UserId) -> Result<Verdict, QueueError> {
        let (verdict, until, queue): (String, i64, String) = self
            .run(
                self.scripts
                    .validate
                    .arg(&*self.prefix)
                    .arg(token.to_string())
                    .arg(user.get())
                    .arg(self.clock.arg()),
            )
            .await?;
        Ok(match verdict.as_str() {
            "VALID" => Verdict::Valid {
                until_unix_ms: until,
                queue: stored_queue(&queue)?,
            },
            "NOT_FOUND" => Verdict::NotFound,
            "EXPIRED" => Verdict::Expired,
            "NOT_ADMITTED" => Verdict::NotAdmitted,
            "WRONG_USER" => Verdict::WrongUser,
            other => return Err(QueueError::Protocol(format!("verdict {other:?}"))),
        })
    }

    /// Frees the token's slot now. False when it was already gone.
    #[tracing::instrument(name = "redis release.lua", skip_all, fields(db.system = "redis", db.operation = "EVALSHA", otel.kind = "client"))]
    pub async fn release(&self, token: Token) -> Result<bool, QueueError> {
        let released: i64 = self
            .run(
                self.scripts
                    .release
                    .arg(&*self.prefix)
                    .arg(token.to_string()),
            )
            .await?;
        Ok(released == 1)
    }

    /// One admission step for `queue`: expire, sweep stale waiters, admit from the head.
    #[tracing::instrument(name = "redis admit.lua", skip_all, fields(db.system = "redis", db.operation = "EVALSHA", otel.kind = "client"))]
    pub async fn admit(&self, queue: QueueId) -> Result<Admission, QueueError> {
        let (admitted, expired, dropped, waiting, active): (u64, u64, u64, u64, u64) = self
            .run(
                self.scripts
                    .admit
                    .arg(&*self.prefix)
                    .arg(queue.key())
                    .arg(self.clock.arg())
                    .arg(self.policy.admission_rate)
                    .arg(self.policy.active_cap)
                    .arg(millis(self.policy.waiting_grace))
                    .arg(millis(self.policy.active_ttl))
                    .arg(MAX_BATCH)
                    .arg(OUTFLOW_TAU_MS),
            )
            .await?;
        Ok(Admission {
            admitted,
            expired,
            dropped,
            waiting,
            active,
        })
    }

    /// Queues that have waiters or active tokens, all at once (the admitter pages through them
    /// with [`QueueStore::scan_rooms`] instead).
    pub async fn queues(&self) -> Result<Vec<QueueId>, QueueError> {
        let key = format!("{}:queues", self.prefix);
        let call = async {
            let mut connection = self.pool.get().await?;
            let members: Vec<String> = redis::cmd("SMEMBERS")
                .arg(&key)
                .query_async(&mut connection)
                .await?;
            Ok::<_, QueueError>(members)
        };
        let members = tokio::time::timeout(self.deadline, call)
            .await
            .map_err(|_| QueueError::Timeout)??;
        Ok(members
            .iter()
            .filter_map(|m| QueueId::from_key(m))
            .collect())
    }

    /// One page of the room set: `SSCAN` from `cursor` with `count` as the size hint. Returns
    /// the next cursor (0 when the pass is complete) and the rooms of this page; members this
    /// service did not write are skipped. A room present for a whole pass is returned at least
    /// once in it (possibly twice, if the set is rehashed meanwhile).
    pub async fn scan_rooms(
        &self,
        cursor: u64,
        count: usize,
    ) -> Result<(u64, Vec<QueueId>), QueueError> {
        let key = format!("{}:queues", self.prefix);
        let call = async {
            let mut connection = self.pool.get().await?;
            let page: (u64, Vec<String>) = redis::cmd("SSCAN")
                .arg(&key)
                .arg(cursor)
                .arg("COUNT")
                .arg(count.max(1))
                .query_async(&mut connection)
                .await?;
            Ok::<_, QueueError>(page)
        };
        let (next, members) = tokio::time::timeout(self.deadline, call)
            .await
            .map_err(|_| QueueError::Timeout)??;
        Ok((
            next,
            members
                .iter()
                .filter_map(|m| QueueId::from_key(m))
                .collect(),
        ))
    }

    /// Takes or renews the single-admitter lease for `holder`. True while held.
    pub async fn hold_lease(&self, holder: &str, lease: Duration) -> Result<bool, QueueError> {
        let held: i64 = self
            .run(
                self.scripts
                    .lease
                    .arg(&*self.prefix)
                    .arg(holder)
                    .arg(millis(lease)),
            )
            .await?;
        Ok(held == 1)
    }

    /// True when Redis answers a PING within the deadline.
    pub async fn ping(&self) -> bool {
        let call = async {
            let mut connection = self.pool.get().await?;
            let pong: String = redis::cmd("PING").query_async(&mut connection).await?;
            Ok::<_, QueueError>(pong)
        };
        matches!(tokio::time::timeout(self.deadline, call).await, Ok(Ok(_)))
    }
}

fn standing(state: &str, position: u64, eta: u64, until: i64) -> Result<Standing, QueueError> {
    match state {
        "W" => Ok(Standing::Waiting {
            position,
            eta_seconds: eta,
        }),
        "A" => Ok(Standing::Active {
            until_unix_ms: until,
        }),
        other => Err(QueueError::Protocol(format!("token state {other:?}"))),
    }
}

fn stored_user(raw: &str) -> Result<UserId, QueueError> {
    raw.parse()
        .ok()
        .and_then(|id| UserId::new(id).ok())
        .ok_or_else(|| QueueError::Protocol(format!("stored user {raw:?}")))
}

fn stored_queue(raw: &str) -> Result<QueueId, QueueError> {
    QueueId::from_key(raw).ok_or_else(|| QueueError::Protocol(format!("stored queue {raw:?}")))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Policy;
    use crate::domain::Standing;

    #[test]
    fn poll_pace_follows_the_wait_inside_the_heartbeat_grace() {
        let policy = Policy {
            admission_rate: 10.0,
            active_cap: 0,
            active_ttl: Duration::from_secs(600),
            waiting_grace: Duration::from_secs(60),
        };
        let waiting = |eta_seconds| Standing::Waiting {
            position: 1,
            eta_seconds,
        };
        assert_eq!(policy.poll_after(&waiting(0)), Duration::from_secs(1));
        assert_eq!(policy.poll_after(&waiting(100)), Duration::from_secs(10));
        assert_eq!(
            policy.poll_after(&waiting(100_000)),
            Duration::from_secs(20)
        );
        let active = Standing::Active { until_unix_ms: 1 };
        assert_eq!(policy.poll_after(&active), Duration::ZERO);
        let short_grace = Policy {
            waiting_grace: Duration::from_secs(2),
            ..policy
        };
        assert_eq!(
            short_grace.poll_after(&waiting(100_000)),
            Duration::from_secs(1)
        );
    }
}
