//! The Redis adapter: the connection pool, the keys, and the scripts. Each queue step is one
//! Lua script (`lua/<step>.lua`, with the key layout in `lua/common.lua`), one round trip,
//! atomic; the room set, a room's history and the change log are read with plain commands.
//! Every script touches the keys of one room only (one Redis Cluster slot) and declares the
//! room's stem as its key, so a cluster client routes it; the global keys (the room set, the
//! settings set, the lease) are written here around the room scripts, never inside one.
//! Each call has a deadline covering both the connection checkout and the Redis work. Here:
//! the scripts and the waiting line's steps; `connections`: the pool or cluster client;
//! `rooms`: the room sets; `reply`: the token scripts' answers; `operator`: figures, history,
//! settings and their change log; `keys`: the key names; `encoding`: how rooms and users are
//! written in keys and values; `upgrade`: what is kept from the layout before hash tags.

mod connections;
mod encoding;
mod keys;
mod operator;
mod reply;
mod rooms;
mod upgrade;

use std::{sync::Arc, time::Duration};

use redis::{FromRedisValue, Script, ScriptInvocation};

use crate::{
    admission::{Admission, MAX_BATCH},
    clock::Clock,
    domain::{QueueEntry, Room, RoomSeats, Token, UserId, Verdict, draw_fraction},
    error::QueueError,
    outflow::Pace,
    policy::Policy,
    settings::{
        Actor, CHANGES_KEPT, HISTORY_SAMPLES, RoomFigures, RoomSample, RoomSettings, SettingChange,
        SettingsPatch,
    },
};
pub use connections::{Connection, Connections};
use encoding::{room_key, stored_room, stored_user};
use keys::Keys;
use reply::{TokenReply, token_status};

/// Time constant of the measured-outflow average behind ETAs.
const OUTFLOW_TAU_MS: u64 = 10_000;
/// Waiting tokens' keys outlive the grace by this much, as a safety net behind the sweeper.
const WAITING_KEY_SLACK: Duration = Duration::from_secs(60);
/// How often a settings change is tried again when another one got in between its read and
/// its write.
const SETTINGS_ATTEMPTS: usize = 8;
/// How long a room counts as listed in the room set after a script last added it, or was told
/// to (`listed` in `lua/common.lua`): a room the store failed to add is added again by a call
/// this much later.
const LISTED_FOR: Duration = Duration::from_secs(10);

/// A room script: the shared prelude (`lua/common.lua`), then the step.
macro_rules! script {
    ($name:literal) => {
        Script::new(concat!(
            include_str!("../../lua/common.lua"),
            "\n",
            include_str!(concat!("../../lua/", $name, ".lua"))
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
    figures: Script,
    settings: Script,
    relist: Script,
    adopt: Script,
}

impl Scripts {
    fn load() -> Self {
        Self {
            issue: script!("issue"),
            status: script!("status"),
            validate: script!("validate"),
            release: script!("release"),
            admit: script!("admit"),
            // The one script on a global key: no room prelude.
            lease: Script::new(include_str!("../../lua/lease.lua")),
            figures: script!("figures"),
            settings: script!("settings"),
            relist: script!("relist"),
            adopt: script!("adopt"),
        }
    }
}

#[derive(Clone)]
pub struct QueueStore {
    redis: Arc<Connections>,
    keys: Keys,
    policy: Arc<Policy>,
    scripts: Arc<Scripts>,
    clock: Clock,
    deadline: Duration,
    /// Times every script and command when the service exports metrics.
    latency: Option<kit::metrics::StoreLatency>,
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
        let redis = Connections::pooled(redis_url, pool_size, deadline)?;
        Ok(Self::on(redis, prefix, policy, deadline))
    }

    /// A store over `redis` (pooled or multiplexed); nothing connects until first use.
    pub fn on(redis: Connections, prefix: &str, policy: Policy, deadline: Duration) -> Self {
        Self {
            redis: Arc::new(redis),
            keys: Keys::new(prefix),
            policy: Arc::new(policy),
            scripts: Arc::new(Scripts::load()),
            clock: Clock::Redis,
            deadline,
            latency: None,
        }
    }

    /// The same store reading time from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The same store timing each round trip into `latency` (operation: the script's name or
    /// the command).
    pub fn with_latency(mut self, latency: kit::metrics::StoreLatency) -> Self {
        self.latency = Some(latency);
        self
    }

    /// The connections' usage now (for the metrics port).
    pub fn pool_usage(&self) -> kit::metrics::PoolUsage {
        self.redis.usage()
    }

    /// Runs one round trip under the deadline, timed when metrics are on.
    async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl std::future::Future<Output = Result<T, QueueError>>,
    ) -> Result<T, QueueError> {
        let call = tokio::time::timeout(self.deadline, call);
        let outcome = match &self.latency {
            Some(latency) => latency.time(operation, call).await,
            None => call.await,
        };
        outcome.map_err(|_| QueueError::Timeout)?
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Where this store's "now" comes from.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The trailing arguments of the scripts that keep a waiter alive and estimate its wait:
    /// grace ms, waiting key ttl ms, configured rate and cap, active ttl ms, outflow time
    /// constant ms (the scripts read the room's own settings over the configured ones).
    fn waiting_args(&self) -> (u64, u64, f64, u32, u64, u64) {
        (
            millis(self.policy.waiting_grace),
            millis(self.policy.waiting_grace + WAITING_KEY_SLACK),
            self.policy.admission_rate,
            self.policy.active_cap,
            millis(self.policy.active_ttl),
            OUTFLOW_TAU_MS,
        )
    }

    /// The scripts' clock argument: the manual time, or 0, which tells the script to read the
    /// Redis server's clock.
    fn clock_arg(&self) -> i64 {
        self.clock.manual_now_ms().unwrap_or(0)
    }

    async fn run<T: FromRedisValue>(
        &self,
        script: &'static str,
        invocation: &mut ScriptInvocation<'_>,
    ) -> Result<T, QueueError> {
        let call = async {
            let mut connection = self.redis.get().await?;
            Ok::<T, QueueError>(invocation.invoke_async(&mut connection).await?)
        };
        // Every step but the admitter's lease renewal (ten a second, a trace each) is traced.
        if script == "lease" {
            return self.timed(script, call).await;
        }
        let span =
            kit::trace::Span::child(kit::trace::Kind::Client, || format!("redis {script}.lua"))
                .with_fixed(kit::trace::db::REDIS_SCRIPT);
        span.wrap(self.timed(script, call)).await
    }

    /// One plain command, under the same deadline as the scripts.
    async fn query<T: FromRedisValue>(&self, command: &redis::Cmd) -> Result<T, QueueError> {
        let call = async {
            let mut connection = self.redis.get().await?;
            Ok::<T, QueueError>(command.query_async(&mut connection).await?)
        };
        self.timed(command_name(command), call).await
    }

    /// The user's live token in `room`: the existing one, or a new one at the back.
    pub async fn issue(&self, user: UserId, room: Room) -> Result<QueueEntry, QueueError> {
        let fresh = Token::random(room);
        let reply = self
            .token_reply(
                "issue",
                self.scripts
                    .issue
                    .key(self.keys.room(room))
                    .arg(room_key(room))
                    .arg(user.get())
                    .arg(fresh.to_string())
                    .arg(self.clock_arg())
                    .arg(self.waiting_args())
                    .arg(draw_fraction())
                    .arg(millis(self.policy.admitted_idle))
                    .arg(millis(LISTED_FOR)),
                room,
            )
            .await?;
        if reply.state == "N" {
            return Err(QueueError::RoomNotOpen {
                opens_at_unix_ms: reply.fields.opens_at,
            });
        }
        Ok(QueueEntry {
            token: Token::parse(&reply.head)
                .map_err(|_| QueueError::Protocol(reply.head.clone()))?,
            user,
            room,
            status: token_status(&reply.state, reply.fields)?,
        })
    }

    /// The token's queue entry: position and ETA while waiting (the call is also the waiter's
    /// heartbeat), or the expiry once active.
    pub async fn status(&self, token: Token) -> Result<QueueEntry, QueueError> {
        let room = token.room().ok_or(QueueError::TokenNotFound)?;
        let reply = self
            .token_reply(
                "status",
                self.scripts
                    .status
                    .key(self.keys.room(room))
                    .arg(token.to_string())
                    .arg(self.clock_arg())
                    .arg(self.waiting_args())
                    .arg(millis(self.policy.admitted_idle))
                    .arg(millis(LISTED_FOR)),
                room,
            )
            .await?;
        match reply.head.as_str() {
            "OK" => Ok(QueueEntry {
                token,
                user: stored_user(reply.user.as_deref().unwrap_or_default())?,
                room,
                status: token_status(&reply.state, reply.fields)?,
            }),
            "NOT_FOUND" => Err(QueueError::TokenNotFound),
            "EXPIRED" => Err(QueueError::TokenExpired),
            other => Err(QueueError::Protocol(format!("status outcome {other:?}"))),
        }
    }

    /// Whether `token` is ACTIVE and bound to `user`.
    pub async fn validate(&self, token: Token, user: UserId) -> Result<Verdict, QueueError> {
        let Some(room) = token.room() else {
            return Ok(Verdict::NotFound);
        };
        let (verdict, until, stored): (String, i64, String) = self
            .run(
                "validate",
                self.scripts
                    .validate
                    .key(self.keys.room(room))
                    .arg(token.to_string())
                    .arg(user.get())
                    .arg(self.clock_arg())
                    .arg(millis(self.policy.admitted_idle)),
            )
            .await?;
        Ok(match verdict.as_str() {
            "VALID" => Verdict::Valid {
                until_unix_ms: until,
                room: stored_room(&stored)?,
            },
            "NOT_FOUND" => Verdict::NotFound,
            "EXPIRED" => Verdict::Expired,
            "NOT_ADMITTED" => Verdict::NotAdmitted,
            "WRONG_USER" => Verdict::WrongUser,
            other => return Err(QueueError::Protocol(format!("verdict {other:?}"))),
        })
    }

    /// Frees the token's slot now. False when it was already gone.
    pub async fn release(&self, token: Token) -> Result<bool, QueueError> {
        let Some(room) = token.room() else {
            return Ok(false);
        };
        let released: i64 = self
            .run(
                "release",
                self.scripts
                    .release
                    .key(self.keys.room(room))
                    .arg(token.to_string()),
            )
            .await?;
        Ok(released == 1)
    }

    /// One admission step for `room` at the full configured pace, with the concert's seats as
    /// last seen: see [`QueueStore::admit_with`].
    pub async fn admit(&self, room: Room) -> Result<Admission, QueueError> {
        self.admit_with(room, &Pace::ceiling(), None).await
    }

    /// One admission step for `room`: expire tokens and no-shows, sweep stale waiters, admit
    /// from the head as the room's settings in effect, `pace` and the concert's `seats` allow
    /// (none while paused, before the opening or with no free seat; `None`: not known now, the
    /// last known stand); count and sample the room.
    pub async fn admit_with(
        &self,
        room: Room,
        pace: &Pace,
        seats: Option<RoomSeats>,
    ) -> Result<Admission, QueueError> {
        let seat_args = seats.map_or_else(
            || [String::new(), String::new(), String::new()],
            |seats| {
                [
                    seats.free.to_string(),
                    seats.held.to_string(),
                    seats.sold.to_string(),
                ]
            },
        );
        type Reply = (u64, u64, u64, u64, u64, u64, u8);
        let (admitted, expired, dropped, waiting, active, idled, emptied): Reply = self
            .run(
                "admit",
                self.scripts
                    .admit
                    .key(self.keys.room(room))
                    .arg(self.clock_arg())
                    .arg(self.policy.admission_rate)
                    .arg(self.policy.active_cap)
                    .arg(millis(self.policy.waiting_grace))
                    .arg(millis(self.policy.active_ttl))
                    .arg(MAX_BATCH)
                    .arg(OUTFLOW_TAU_MS)
                    .arg(HISTORY_SAMPLES)
                    .arg(pace.share)
                    .arg(pace.limit.code())
                    .arg(&pace.detail)
                    .arg(&seat_args)
                    .arg(millis(self.policy.admitted_idle)),
            )
            .await?;
        // A failure here is only logged: the room stays listed (the next step tries again), or
        // a joiner's room is listed again by their calls within `LISTED_FOR`.
        if emptied == 1
            && let Err(error) = self.unlist(room).await
        {
            tracing::warn!(%error, ?room, "could not update the room set for an emptied room");
        }
        Ok(Admission {
            admitted,
            expired,
            dropped,
            idled,
            waiting,
            active,
        })
    }

    /// Runs issue.lua or status.lua for a token of `room`, and lists the room when the script
    /// says so.
    async fn token_reply(
        &self,
        script: &'static str,
        invocation: &mut ScriptInvocation<'_>,
        room: Room,
    ) -> Result<TokenReply, QueueError> {
        let reply = TokenReply::parse(self.run(script, invocation).await?)?;
        self.listed(room, reply.list).await;
        Ok(reply)
    }

    /// Takes or renews the single-admitter lease for `holder`. True while held.
    pub async fn hold_lease(&self, holder: &str, lease: Duration) -> Result<bool, QueueError> {
        let held: i64 = self
            .run(
                "lease",
                self.scripts
                    .lease
                    .key(self.keys.lease())
                    .arg(holder)
                    .arg(millis(lease)),
            )
            .await?;
        Ok(held == 1)
    }

    /// True when Redis answers a PING within the deadline.
    pub async fn ping(&self) -> bool {
        let call = async {
            let mut connection = self.redis.get().await?;
            let pong: String = redis::cmd("PING").query_async(&mut connection).await?;
            Ok::<_, QueueError>(pong)
        };
        matches!(tokio::time::timeout(self.deadline, call).await, Ok(Ok(_)))
    }
}

/// A plain command's name as its latency's operation label (the commands this store sends).
fn command_name(command: &redis::Cmd) -> &'static str {
    match command.args_iter().next() {
        Some(redis::Arg::Simple(b"SMEMBERS")) => "SMEMBERS",
        Some(redis::Arg::Simple(b"SSCAN")) => "SSCAN",
        Some(redis::Arg::Simple(b"LRANGE")) => "LRANGE",
        Some(redis::Arg::Simple(b"SADD")) => "SADD",
        Some(redis::Arg::Simple(b"SREM")) => "SREM",
        Some(redis::Arg::Simple(b"HGETALL")) => "HGETALL",
        Some(redis::Arg::Simple(b"DEL")) => "DEL",
        _ => "command",
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
