//! A real catalog for other services' tests: a fresh database on the given PostgreSQL server,
//! migrated and seeded, served on port 0.

use std::net::SocketAddr;

use clap::Parser;

use crate::{Config, seed::SeedArgs};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    config: Config,
}

/// Puts `concert_id` in its own waiting room (the seed puts every concert in the default room).
pub async fn give_own_room(pool: &sqlx::PgPool, concert_id: i64) -> sqlx::Result<()> {
    sqlx::query("update concerts set shared_room = false where id = $1")
        .bind(concert_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Starts the catalog in this process; returns its address and a pool on its database (for
/// tests that add or change concerts).
pub async fn spawn_seeded(
    server_url: &str,
    seed: SeedArgs,
) -> anyhow::Result<(SocketAddr, sqlx::PgPool)> {
    let database_url = kit::postgres::fresh_database(server_url).await?;
    let config = Args::try_parse_from([
        "catalog",
        "--listen-addr=127.0.0.1:0",
        "--metrics-addr=127.0.0.1:0",
        &format!("--database-url={database_url}"),
        "--db-pool-size=4",
    ])?
    .config;
    let pool = crate::prepare_database(&config).await?;
    crate::seed::seed(&pool, seed).await?;
    let (addr, serve) = crate::build(config, std::future::pending()).await?;
    tokio::spawn(serve);
    Ok((addr, pool))
}
