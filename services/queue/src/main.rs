use clap::Parser;

#[global_allocator]
static ALLOCATOR: kit::Allocator = kit::Allocator;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = kit::telemetry::init("queue");
    let config = queue::Config::parse();
    let (_, serve) = queue::build(config, kit::shutdown::signal()).await?;
    serve.await
}
