use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "catalog",
    version,
    about = "Concerts, options and seat maps on PostgreSQL"
)]
struct Cli {
    #[command(flatten)]
    config: catalog::Config,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve gRPC (the default).
    Serve,
    /// Migrate, insert demo or benchmark data, and exit.
    Seed(catalog::seed::SeedCommand),
}

#[global_allocator]
static ALLOCATOR: kit::Allocator = kit::Allocator;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = kit::telemetry::init("catalog");
    let cli = Cli::parse();
    match cli.command {
        None | Some(Command::Serve) => {
            let (_, serve) = catalog::build(cli.config, kit::shutdown::signal()).await?;
            serve.await
        }
        Some(Command::Seed(args)) => {
            let pool = catalog::prepare_database(&cli.config).await?;
            catalog::seed::seed_with_presale(&pool, args.data, args.presale).await?;
            tracing::info!(?args, "seeded");
            Ok(())
        }
    }
}
