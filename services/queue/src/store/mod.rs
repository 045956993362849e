//! The Redis adapter: the connection pool, the keys, and the scripts. Each queue step is one
//! Lua script (`lua/<step>.lua`, with the key layout in `lua/common.lua`), one round trip,
//! atomic; the room set, a room's history and the change log are read with plain commands.
//! Each call has a deadline covering both the connection checkout and the Redis work. Here: the connections,
//! the scripts and the waiting line's steps; `operator`: figures, history, settings and their
//! change log; `encoding`: how rooms and users are written in keys and values.

mod connections;
mod encoding;
mod operator;

use std::{sync::Arc, time::Duration};

use redis::{FromRedisValue, Script, ScriptInvocation};

use crate::{
    admission::{Admission, MAX_BATCH},
    clock::Clock,
    domain::{QueueEntry, Room, RoomSeats, Token, TokenStatus, UserId, Verdict},
    error::QueueError,
    outflow::Pace,
    policy::Policy,
    settings::{
        Actor, CHANGES_KEPT, HISTORY_SAMPLES, RoomFigures, RoomSample, RoomSettings, SettingChange,
        SettingsPatch,
    },
};
pub use connections::Connections;
use encoding::{room_from_key, room_key, stored_room, stored_user};

/// Time constant of the measured-outflow average behind ETAs.
const OUTFLOW_TAU_MS: u64 = 10_000;
/// Waiting tokens' keys outlive the grace by this much, as a safety net behind the sweeper.
const WAITING_KEY_SLACK: Duration = Duration::from_secs(60);
/// How often a settings change is tried again when another one got in between its read and
/// its write.
const SETTINGS_ATTEMPTS: usize = 8;

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
            figures: script!("figures"),
            settings: script!("settings"),
        }
    }
}

#[derive(Clone)]
pub struct QueueStore {
    redis: Arc<Connections>,
    prefix: Arc<str>,
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
            prefix: prefix.into(),
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

    /// The set of rooms that have waiters or active tokens (`P:queues`, see `lua/common.lua`).
    fn room_set_key(&self) -> String {
        format!("{}:queues", self.prefix)
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
        self.timed(script, call).await
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
    #[tracing::instrument(name = "redis issue.lua", skip_all, fields(db.system = "redis", db.operation = "EVALSHA", otel.kind = "client"))]
    pub async fn issue(&self, user: UserId, room: Room) -> Result<QueueEntry, QueueError> {
        let fresh = Token::random();
        type Reply = (String, String, u64, u64, i64, u8, i64, i64, u8, i64);
        let (token, state, position, eta, until, paused, opens_at, opens_in, may_return, choose_by): Reply = self
            .run(
                "issue",
                self.scripts
                    .issue
                    .arg(&*self.prefix)
                    .arg(room_key(room))
                    .arg(user.get())
                    .arg(fresh.to_string())
                    .arg(self.clock_arg())
                    .arg(self.waiting_args())
                    .arg(fresh.draw_fraction())
                    .arg(millis(self.policy.admitted_idle)),
            )
            .await?;
        if state == "N" {
            return Err(QueueError::RoomNotOpen {
                opens_at_unix_ms: opens_at,
            });
        }
        Ok(QueueEntry {
            token: Token::parse(&token).map_err(|_| QueueError::Protocol(token.clone()))?,
            user,
            room,
            status: token_status(
                &state,
                StatusFields {
                    position,
                    eta,
                    until,
                    paused,
                    opens_at,
                    opens_in,
                    may_return,
                    choose_by,
                },
            )?,
        })
    }

    /// The token's queue entry: position and ETA while waiting (the call is also the waiter's
    /// heartbeat), or the expiry once active.
    #[tracing::instrument(name = "redis status.lua", skip_all, fields(db.system = "redis", db.operation = "EVALSHA", otel.kind = "client"))]
    pub async fn status(&self, token: Token) -> Result<QueueEntry, QueueError> {
        type Reply = (
            String,
            String,
            u64,
            u64,
            i64,
            String,
            String,
            u8,
            i64,
            i64,
            u8,
            i64,
        );
        let (
            outcome,
            state,
            position,
            eta,
            until,
            user,
            room,
            paused,
            opens_at,
            opens_in,
            may_return,
            choose_by,
        ): Reply = self
            .run(
                "status",
                self.scripts
                    .status
                    .arg(&*self.prefix)
                    .arg(token.to_string())
                    .arg(self.clock_arg())
                    .arg(self.waiting_args())
                    .arg(millis(self.policy.admitted_idle)),
            )
            .await?;
        match outcome.as_str() {
            "OK" => Ok(QueueEntry {
                token,
                user: stored_user(&user)?,
                room: stored_room(&room)?,
                status: token_status(
                    &state,
                    StatusFields {
                        position,
                        eta,
                        until,
                        paused,
                        opens_at,
                        opens_in,
                        may_return,
                        choose_by,
                    },
                )?,
            }),
            "NOT_FOUND" => Err(QueueError::TokenNotFound),
            "EXPIRED" => Err(QueueError::TokenExpired),
            other => Err(QueueError::Protocol(format!("status outcome {other:?}"))),
        }
    }

    /// Whether `token` is ACTIVE and bound to `user`.
    #[tracing::instrument(name = "redis validate.lua", skip_all, fields(db.system = "redis", db.operation = "EVALSHA", otel.kind = "client"))]
    pub async fn validate(&self, token: Token, user: UserId) -> Result<Verdict, QueueError> {
        let (verdict, until, room): (String, i64, String) = self
            .run(
                "validate",
                self.scripts
                    .validate
                    .arg(&*self.prefix)
                    .arg(token.to_string())
                    .arg(user.get())
                    .arg(self.clock_arg())
                    .arg(millis(self.policy.admitted_idle)),
            )
            .await?;
        Ok(match verdict.as_str() {
            "VALID" => Verdict::Valid {
                until_unix_ms: until,
                room: stored_room(&room)?,
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
                "release",
                self.scripts
                    .release
                    .arg(&*self.prefix)
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
    #[tracing::instrument(name = "redis admit.lua", skip_all, fields(db.system = "redis", db.operation = "EVALSHA", otel.kind = "client"))]
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
        let (admitted, expired, dropped, waiting, active, idled): (u64, u64, u64, u64, u64, u64) =
            self.run(
                "admit",
                self.scripts
                    .admit
                    .arg(&*self.prefix)
                    .arg(room_key(room))
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
        Ok(Admission {
            admitted,
            expired,
            dropped,
            idled,
            waiting,
            active,
        })
    }

    /// Rooms that have waiters or active tokens, all at once (the admitter pages through them
    /// with [`QueueStore::scan_rooms`] instead).
    pub async fn rooms(&self) -> Result<Vec<Room>, QueueError> {
        let mut command = redis::cmd("SMEMBERS");
        command.arg(self.room_set_key());
        let members: Vec<String> = self.query(&command).await?;
        Ok(members.iter().filter_map(|m| room_from_key(m)).collect())
    }

    /// One page of the room set: `SSCAN` from `cursor` with `count` as the size hint. Returns
    /// the next cursor (0 when the pass is complete) and the rooms of this page; members this
    /// service did not write are skipped. A room present for a whole pass is returned at least
    /// once in it (possibly twice, if the set is rehashed meanwhile).
    pub async fn scan_rooms(
        &self,
        cursor: u64,
        count: usize,
    ) -> Result<(u64, Vec<Room>), QueueError> {
        let mut command = redis::cmd("SSCAN");
        command
            .arg(self.room_set_key())
            .arg(cursor)
            .arg("COUNT")
            .arg(count.max(1));
        let (next, members): (u64, Vec<String>) = self.query(&command).await?;
        Ok((
            next,
            members.iter().filter_map(|m| room_from_key(m)).collect(),
        ))
    }

    /// Takes or renews the single-admitter lease for `holder`. True while held.
    pub async fn hold_lease(&self, holder: &str, lease: Duration) -> Result<bool, QueueError> {
        let held: i64 = self
            .run(
                "lease",
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
            let mut connection = self.redis.get().await?;
            let pong: String = redis::cmd("PING").query_async(&mut connection).await?;
            Ok::<_, QueueError>(pong)
        };
        matches!(tokio::time::timeout(self.deadline, call).await, Ok(Ok(_)))
    }
}

/// The fields of a script's answer that describe a token's status.
struct StatusFields {
    position: u64,
    eta: u64,
    until: i64,
    paused: u8,
    opens_at: i64,
    opens_in: i64,
    may_return: u8,
    choose_by: i64,
}

fn token_status(state: &str, fields: StatusFields) -> Result<TokenStatus, QueueError> {
    match state {
        "W" => Ok(TokenStatus::Waiting {
            position: fields.position,
            eta_seconds: fields.eta,
            paused: fields.paused == 1,
        }),
        "A" => Ok(TokenStatus::Active {
            until_unix_ms: fields.until,
            choose_by_unix_ms: (fields.choose_by > 0).then_some(fields.choose_by),
        }),
        "P" => Ok(TokenStatus::Prequeue {
            opens_at_unix_ms: fields.opens_at,
            opens_in_ms: u64::try_from(fields.opens_in).unwrap_or(0),
        }),
        "S" => Ok(TokenStatus::SoldOut {
            position: fields.position,
            seats_may_return: fields.may_return == 1,
        }),
        other => Err(QueueError::Protocol(format!("token state {other:?}"))),
    }
}

/// A plain command's name as its latency's operation label (the commands this store sends).
fn command_name(command: &redis::Cmd) -> &'static str {
    match command.args_iter().next() {
        Some(redis::Arg::Simple(b"SMEMBERS")) => "SMEMBERS",
        Some(redis::Arg::Simple(b"SSCAN")) => "SSCAN",
        Some(redis::Arg::Simple(b"LRANGE")) => "LRANGE",
        _ => "command",
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
