//! PostgreSQL infrastructure: a pool whose every wait has a deadline, creating a service's
//! database when missing, and fresh throw-away databases for tests. No schema or SQL of any
//! service lives here.

use std::{str::FromStr, time::Duration};

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

/// A pool on `url`; connects lazily, so a service starts before its database is up.
pub fn pool(url: &str, settings: PoolSettings) -> Result<PgPool, sqlx::Error> {
    let statement_timeout = format!("{}ms", settings.statement_timeout.as_millis());
    let options = PgConnectOptions::from_str(url)?
        .options([("statement_timeout", statement_timeout.as_str())])
        .log_statements(tracing::log::LevelFilter::Trace);
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .connect_lazy_with(options))
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
    use super::with_database;

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
