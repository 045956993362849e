//! PostgreSQL infrastructure: a pool whose every wait has a deadline, creating a service's
//! database when missing, and fresh throw-away databases for tests. No schema or SQL of any
//! service lives here.

use std::{
    future::Future,
    str::FromStr,
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use sqlx::{
    AssertSqlSafe, ConnectOptions, Connection, Executor, PgConnection, PgPool,
    migrate::MigrateDatabase,
    postgres::{PgConnectOptions, PgPoolOptions},
};

/// Pool limits; every wait is bounded.
#[derive(Clone, Copy, Debug)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// Longest wait for a free connection.
    pub acquire_timeout: Duration,
    /// Server-side cap on any one statement (`statement_timeout`).
    pub statement_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(5),
        }
    }
}

/// Creates the database `url` names if it does not exist yet (needs CREATEDB; a failure is
/// logged and left to the first connection to report).
pub async fn ensure_database(url: &str) {
    match sqlx::Postgres::database_exists(url).await {
        Ok(true) => {}
        Ok(false) => match sqlx::Postgres::create_database(url).await {
            Ok(()) => tracing::info!("created database"),
            // Another replica may have created it in between.
            Err(error) if sqlx::Postgres::database_exists(url).await.unwrap_or(false) => {
                tracing::debug!(%error, "database appeared concurrently");
            }
            Err(error) => tracing::warn!(%error, "could not create the database"),
        },
        Err(error) => tracing::warn!(%error, "could not check whether the database exists"),
    }
}

/// How long a pooled connection may sit idle before it is pinged on its way out.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// A pool on `url`; connects lazily, so a service starts before its database is up.
pub fn pool(url: &str, settings: PoolSettings) -> Result<PgPool, sqlx::Error> {
    let statement_timeout = format!("{}ms", settings.statement_timeout.as_millis());
    let options = PgConnectOptions::from_str(url)?
        .options([("statement_timeout", statement_timeout.as_str())])
        .log_statements(tracing::log::LevelFilter::Trace);
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        // sqlx pings every connection it hands out by default: a second round trip per
        // statement. A busy connection proves itself by its last statement; only one that sat
        // idle (through a restart of the server, say) is pinged first, and after the server
        // was seen ending a session (a restart), every one idle since then.
        .test_before_acquire(false)
        .before_acquire(|connection, meta| {
            Box::pin(async move {
                let suspect =
                    meta.idle_for > IDLE_BEFORE_PING || idle_since_sessions_ended(meta.idle_for);
                if suspect && let Err(error) = connection.ping().await {
                    if session_ended(&error) {
                        note_session_ended();
                    }
                    return Err(error);
                }
                Ok(true)
            })
        })
        .connect_lazy_with(options))
}

/// Whether the server ended the session of the connection `error` came from before the
/// statement ran (SQLSTATE class 57P: shutting down, restarting, not accepting connections
/// yet). A restart leaves every pooled connection so; its next statement answers it, and never
/// ran.
pub fn session_ended(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().is_some_and(|code| code.starts_with("57P")))
}

/// When this process last saw the server end a session: microseconds from [`clock`]'s start
/// (plus one, so that 0 means never).
static SESSIONS_ENDED: AtomicU64 = AtomicU64::new(0);

fn clock() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    u64::try_from(START.get_or_init(Instant::now).elapsed().as_micros())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

fn note_session_ended() {
    SESSIONS_ENDED.fetch_max(clock(), Ordering::SeqCst);
}

/// Whether a connection idle for `idle_for` was last used before a session was seen ended:
/// its own session may have ended too.
fn idle_since_sessions_ended(idle_for: Duration) -> bool {
    let ended = SESSIONS_ENDED.load(Ordering::SeqCst);
    let idle = u64::try_from(idle_for.as_micros()).unwrap_or(u64::MAX);
    ended != 0 && clock().saturating_sub(idle) <= ended
}

/// A store's error, as far as its database is concerned.
pub trait StoreError {
    /// The database error behind it, if it is one.
    fn database(&self) -> Option<&sqlx::Error>;
}

impl StoreError for sqlx::Error {
    fn database(&self) -> Option<&sqlx::Error> {
        Some(self)
    }
}

/// Attempts of one operation whose connection's session the server had ended.
const ATTEMPTS_WHEN_SESSION_ENDED: u32 = 3;

/// Runs `operation`, and again (up to [`ATTEMPTS_WHEN_SESSION_ENDED`] attempts) when it failed
/// because the server had ended its connection's session ([`session_ended`]: after a restart,
/// every pooled connection answers its next statement so). The statement never ran; and from
/// then on every pool pings the connections idle since before the failure before handing one
/// out, so the next attempt gets a live connection and no later caller gets a dead one. For
/// operations safe to send again whatever happened: reads, and writes the store answers again
/// with their first result.
pub async fn again_if_session_ended<T, E, F, Fut>(mut operation: F) -> Result<T, E>
where
    E: StoreError,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        match operation().await {
            Err(error) if error.database().is_some_and(session_ended) => {
                note_session_ended();
                if attempt >= ATTEMPTS_WHEN_SESSION_ENDED {
                    return Err(error);
                }
                tracing::debug!(
                    attempt,
                    "the server had ended the session; running it again"
                );
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

/// Whether the database answers a statement (a readiness probe): once more on a live
/// connection when the first met a session the server had ended, which says nothing about
/// the server now.
pub async fn answers(pool: &PgPool) -> bool {
    again_if_session_ended(|| sqlx::query("select 1").execute(pool))
        .await
        .is_ok()
}

/// SQLSTATE of a statement cancelled by `statement_timeout`.
const QUERY_CANCELED: &str = "57014";

/// Whether `error` says the database could not be used just now, rather than that it refused
/// the statement: no connection within the deadline, the connection broke, a statement
/// cancelled by its timeout, or the server ending the session — shutting down or restarting
/// (SQLSTATE class 57P: a pooled connection whose server was restarted answers its next
/// statement so), or a connection exception (class 08). The caller may try again; services
/// answer it as UNAVAILABLE, never as an internal error.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code == QUERY_CANCELED || code.starts_with("57P") || code.starts_with("08")
        }),
        _ => false,
    }
}

/// `url` with its database name replaced by `database`.
pub fn with_database(url: &str, database: &str) -> Result<String, String> {
    let scheme_end = url.find("://").ok_or_else(|| format!("not a URL: {url}"))? + 3;
    let (head, rest) = url.split_at(scheme_end);
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(index) => rest.split_at(index),
        None => (rest, ""),
    };
    let query = tail.find('?').map_or("", |index| &tail[index..]);
    Ok(format!("{head}{authority}/{database}{query}"))
}

/// Prefix of every database [`fresh_database`] creates.
pub const TEST_DATABASE_PREFIX: &str = "ticketing_test_";

/// Creates an empty database with a unique name on the server of `server_url` and returns
/// its URL. Tests use one each, so they never see each other's rows.
pub async fn fresh_database(server_url: &str) -> Result<String, sqlx::Error> {
    let name = format!("{TEST_DATABASE_PREFIX}{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(server_url).await?;
    // The name is ours (prefix + UUID), never user input.
    admin
        .execute(sqlx::raw_sql(AssertSqlSafe(format!(
            r#"create database "{name}""#
        ))))
        .await?;
    admin.close().await?;
    with_database(server_url, &name).map_err(|error| sqlx::Error::Configuration(error.into()))
}

/// Drops the database `name` on the server of `server_url` (terminating its sessions).
pub async fn drop_database(server_url: &str, name: &str) -> Result<(), sqlx::Error> {
    let mut admin = PgConnection::connect(server_url).await?;
    drop_named(&mut admin, name).await?;
    admin.close().await
}

async fn drop_named(admin: &mut PgConnection, name: &str) -> Result<(), sqlx::Error> {
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(sqlx::Error::Configuration(
            format!("refusing to drop database {name:?}").into(),
        ));
    }
    admin
        .execute(sqlx::raw_sql(AssertSqlSafe(format!(
            r#"drop database if exists "{name}" with (force)"#
        ))))
        .await?;
    Ok(())
}

/// Drops every database [`fresh_database`] made on this server (before a test run, so they do
/// not pile up). Returns how many were dropped.
pub async fn drop_test_databases(server_url: &str) -> Result<usize, sqlx::Error> {
    let mut admin = PgConnection::connect(server_url).await?;
    let names: Vec<(String,)> =
        sqlx::query_as("select datname from pg_database where starts_with(datname, $1)")
            .bind(TEST_DATABASE_PREFIX)
            .fetch_all(&mut admin)
            .await?;
    for (name,) in &names {
        drop_named(&mut admin, name).await?;
    }
    admin.close().await?;
    Ok(names.len())
}

/// The plan PostgreSQL chooses for `sql` with `$1` bound to `param` (`EXPLAIN (COSTS OFF)`),
/// one line per node — for tests that hold queries to their indexes.
pub async fn explain<T>(pool: &PgPool, sql: &str, param: T) -> Result<String, sqlx::Error>
where
    T: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send,
{
    let rows: Vec<(String,)> = sqlx::query_as(AssertSqlSafe(format!("explain (costs off) {sql}")))
        .bind(param)
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(line,)| line)
        .collect::<Vec<_>>()
        .join("\n"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn server_url() -> String {
        std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
    }

    /// What a server restart does to a session: the administrator ends it (57P01); waits
    /// until it has gone.
    async fn end_session(admin: &mut PgConnection, backend: i32) {
        let (ended,): (bool,) = sqlx::query_as("select pg_terminate_backend($1, 10000)")
            .bind(backend)
            .fetch_one(admin)
            .await
            .unwrap();
        assert!(ended, "session {backend} ended");
    }

    #[tokio::test]
    async fn a_pooled_connection_the_server_ended_is_unavailable_and_a_refused_statement_is_not() {
        let url = fresh_database(&server_url()).await.unwrap();
        // One connection: every statement below runs on the same one while it lives.
        let settings = PoolSettings {
            max_connections: 1,
            ..PoolSettings::default()
        };
        let pool = pool(&url, settings).unwrap();
        let (backend,): (i32,) = sqlx::query_as("select pg_backend_pid()")
            .fetch_one(&pool)
            .await
            .unwrap();
        // The pool's one idle connection.
        let mut admin = PgConnection::connect(&server_url()).await.unwrap();
        end_session(&mut admin, backend).await;
        let error = sqlx::query("select 1").execute(&pool).await.unwrap_err();
        assert!(is_unavailable(&error), "{error:?}");
        // The pool dropped that connection: the next statement runs on a new one.
        sqlx::query("select 1").execute(&pool).await.unwrap();

        let refused = sqlx::query("select 1/0").execute(&pool).await.unwrap_err();
        assert!(!is_unavailable(&refused), "{refused:?}");
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("set local statement_timeout = 10")
            .execute(&mut *tx)
            .await
            .unwrap();
        let timed_out = sqlx::query("select pg_sleep(1)")
            .execute(&mut *tx)
            .await
            .unwrap_err();
        assert!(is_unavailable(&timed_out), "{timed_out:?}");
        drop(tx);
        pool.close().await;
        admin.close().await.unwrap();
    }

    #[tokio::test]
    async fn after_the_server_ended_every_session_an_operation_runs_again_and_no_dead_connection_is_handed_out()
     {
        let url = fresh_database(&server_url()).await.unwrap();
        let settings = PoolSettings {
            max_connections: 3,
            ..PoolSettings::default()
        };
        let pool = pool(&url, settings).unwrap();
        // Three connections in the pool, each with its session, idle.
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(pool.acquire().await.unwrap());
        }
        let mut backends = Vec::new();
        for connection in &mut held {
            let (backend,): (i32,) = sqlx::query_as("select pg_backend_pid()")
                .fetch_one(&mut **connection)
                .await
                .unwrap();
            backends.push(backend);
        }
        drop(held);
        let until = Instant::now() + Duration::from_secs(10);
        while pool.num_idle() < 3 {
            assert!(
                Instant::now() < until,
                "the connections went back to the pool"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // What a restart does: the server ends every one of them.
        let mut admin = PgConnection::connect(&server_url()).await.unwrap();
        for backend in backends {
            end_session(&mut admin, backend).await;
        }
        // The first attempt meets an ended session; the next gets a live connection, the
        // other dead ones being pinged and dropped on the way.
        let one: i32 = again_if_session_ended(|| sqlx::query_scalar("select 1").fetch_one(&pool))
            .await
            .unwrap();
        assert_eq!(one, 1);
        for _ in 0..3 {
            sqlx::query("select 1").execute(&pool).await.unwrap();
        }
        pool.close().await;
        admin.close().await.unwrap();
    }

    #[test]
    fn database_names_are_swapped_in_urls() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres", "x").as_deref(),
            Ok("postgres://u@h:5432/x")
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x").as_deref(),
            Ok("postgres://u:p@h/x?sslmode=disable")
        );
        assert_eq!(
            with_database("postgres://h", "x").as_deref(),
            Ok("postgres://h/x")
        );
        assert!(with_database("nonsense", "x").is_err());
    }
}
