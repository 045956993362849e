//! Load generator for the ticketing system. Each scenario is a subcommand; every run prints a
//! human summary on stderr and one JSON object on stdout.

mod client;
mod holds;
mod spans;
mod stats;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "loadtest", about = "Load scenarios against a running gateway")]
struct Cli {
    /// The gateway's base URL.
    #[arg(
        long,
        env = "GATEWAY_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    gateway: String,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Seat holds as fast as the system takes them; verifies no seat was held twice.
    Holds(holds::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let client = client::Client::new(&cli.gateway)?;
    let report = match cli.scenario {
        Scenario::Holds(args) => holds::run(&client, args).await?,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
