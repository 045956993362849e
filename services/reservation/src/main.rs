use clap::Parser;

#[global_allocator]
static ALLOCATOR: kit::Allocator = kit::Allocator;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = kit::telemetry::init("reservation");
    let config = reservation::Config::parse();
    let (_, serve) = reservation::build(config, kit::shutdown::signal()).await?;
    serve.await
}
