use clap::Parser;

#[global_allocator]
static ALLOCATOR: kit::Allocator = kit::Allocator;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = kit::telemetry::init("gateway");
    let config = gateway::Config::parse();
    let (_, serve) = gateway::build(config, kit::shutdown::signal()).await?;
    serve.await
}
