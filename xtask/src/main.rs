//! Project automation. `cargo xtask up` runs the whole system on this machine;
//! `cargo xtask test` runs every test against real stores and a real headless browser.

mod bench;
mod browser;
mod cluster_pass;
mod fuzz;
mod launch;
mod process;
mod redis_cluster;
mod stores;
mod supervise;
mod token;
mod viewer;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "Run, test and benchmark the ticketing system")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build in release (unless --no-build) and run every service, with the trace viewer and
    /// the stores, locally until Ctrl-C or SIGTERM.
    Up(Box<launch::UpArgs>),
    /// Find or start PostgreSQL and Redis, find or install Chromium and chromedriver (for the
    /// browser tests), then run the whole workspace's tests; then the queue's tests again on a
    /// private three-primary Redis Cluster.
    Test {
        #[command(flatten)]
        stores: stores::StoreArgs,
        /// Extra arguments passed to `cargo test` (after `--`).
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
    /// Check that the local trace viewer (deploy/trace-viewer) still builds.
    ViewerCheck,
    /// The standard load runs beside this machine's own limits; writes target/bench/<time>/,
    /// docs/benchmarks.md and the README's results table.
    Bench(bench::BenchArgs),
    /// Print a bearer token for a user, signed with the development key that
    /// `cargo xtask up --auth jwt` created (only the token, on stdout).
    Token(token::TokenArgs),
    /// Start the system on free private ports and fuzz its HTTP API from its own OpenAPI
    /// document with Schemathesis (pinned, in target/fuzz-venv), in trusted and jwt mode.
    Fuzz(fuzz::FuzzArgs),
    /// Find or start PostgreSQL and Redis and print their URLs (kept running until Ctrl-C
    /// when private instances had to be started).
    Stores {
        #[command(flatten)]
        stores: stores::StoreArgs,
        /// Also start a private three-primary Redis Cluster and print its URL.
        #[arg(long)]
        redis_cluster: bool,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => launch::up(*args).await,
        Command::Test { stores, cargo_args } => test(stores, cargo_args).await,
        Command::Stores {
            stores,
            redis_cluster,
        } => print_stores(stores, redis_cluster).await,
        Command::Bench(args) => bench::bench(args).await,
        Command::Fuzz(args) => fuzz::fuzz(args).await,
        Command::Token(args) => token::token(args),
        Command::ViewerCheck => viewer::check()
            .await
            .map(|()| std::process::ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn test(
    args: stores::StoreArgs,
    cargo_args: Vec<String>,
) -> anyhow::Result<std::process::ExitCode> {
    // The browser first: it may fail with what to install, and then no store was started.
    let browser = browser::ensure().await?;
    // The load generator's instruction counting is tested on a process under callgrind.
    stores::ensure_programs(&[("valgrind", "valgrind"), ("callgrind_control", "valgrind")]).await?;
    let stores = stores::ensure(&args).await?;
    eprintln!(
        "xtask: Redis {}  PostgreSQL {}",
        stores.redis_url, stores.database_url
    );
    // The load generator's fault driver is tested on a redis-server of its own (it stops it).
    let redis_server = stores::redis_server().await?;
    eprintln!(
        "xtask: Chromium {}  chromedriver {}",
        browser.chrome.display(),
        browser.chromedriver.display()
    );
    let mut command = tokio::process::Command::new(process::cargo());
    command.arg("test");
    // The whole workspace unless the arguments pick packages (`--workspace` would override them).
    if !cluster_pass::selects_packages(&cargo_args) {
        command.arg("--workspace");
    }
    command
        .args(&cargo_args)
        .env(browser::CHROME_VAR, &browser.chrome)
        .env(browser::CHROMEDRIVER_VAR, &browser.chromedriver)
        .env("TICKETING_REDIS_SERVER", &redis_server);
    let mut totals = TestTotals::default();
    let mut passed = run_tests(command, &stores, &mut totals).await?;
    // The queue's tests again, their stores on a Redis Cluster (tests/support reads
    // QUEUE_TEST_REDIS_CLUSTER; tests of a single Redis's connections keep REDIS_URL).
    match cluster_pass::arguments(&cargo_args) {
        Some(arguments) => {
            let cluster = redis_cluster::RedisCluster::start().await;
            match cluster {
                Ok(cluster) => {
                    let mut command = tokio::process::Command::new(process::cargo());
                    command
                        .arg("test")
                        .args(&arguments)
                        .env(cluster_pass::CLUSTER_VAR, &cluster.url);
                    let outcome = run_tests(command, &stores, &mut totals).await;
                    cluster.stop().await;
                    passed &= outcome?;
                }
                Err(error) => {
                    eprintln!("xtask: {error:#}");
                    passed = false;
                }
            }
        }
        None => {
            eprintln!("xtask: the queue is not among the packages tested: no Redis Cluster pass")
        }
    }
    stores.stop().await;
    // One closing line for the whole workspace (cargo's own last line is often an empty doc-test run).
    println!(
        "summary: {} passed, {} failed, {} skipped",
        totals.passed, totals.failed, totals.ignored
    );
    Ok(if passed && totals.passed > 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

/// Runs one `cargo test` on `stores`, echoing its output and adding its results to `totals`;
/// true when it succeeded.
async fn run_tests(
    mut command: tokio::process::Command,
    stores: &stores::Stores,
    totals: &mut TestTotals,
) -> anyhow::Result<bool> {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let mut child = command
        .current_dir(process::root())
        .env("REDIS_URL", &stores.redis_url)
        .env("DATABASE_URL", &stores.database_url)
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    if let Some(stdout) = child.stdout.take() {
        let mut lines = BufReader::new(stdout).lines();
        while let Some(line) = lines.next_line().await? {
            println!("{line}");
            totals.add(&line);
        }
    }
    Ok(child.wait().await?.success())
}

/// Sums cargo's `test result:` lines.
#[derive(Default)]
struct TestTotals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl TestTotals {
    fn add(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split([';', '.']) {
            let mut words = part.split_whitespace();
            if let (Some(count), Some(kind)) = (words.next(), words.next()) {
                let Ok(count) = count.parse::<u64>() else {
                    continue;
                };
                match kind {
                    "passed" => self.passed += count,
                    "failed" => self.failed += count,
                    "ignored" => self.ignored += count,
                    _ => {}
                }
            }
        }
    }
}

async fn print_stores(
    args: stores::StoreArgs,
    redis_cluster: bool,
) -> anyhow::Result<std::process::ExitCode> {
    let mut stores = stores::ensure(&args).await?;
    let mut env = Vec::new();
    if redis_cluster {
        redis_cluster::serve_queue(&mut stores, &mut env).await?;
    }
    println!("REDIS_URL={}", stores.redis_url);
    for (name, value) in env {
        println!("{name}={value}");
    }
    println!("DATABASE_URL={}", stores.database_url);
    if stores.has_private_instances() {
        eprintln!("xtask: private instances running; Ctrl-C stops them");
        kit::shutdown::signal().await;
    }
    stores.stop().await;
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::TestTotals;

    #[test]
    fn sums_cargo_test_result_lines() {
        let mut totals = TestTotals::default();
        totals.add("test result: ok. 13 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.29s");
        totals.add("test result: FAILED. 2 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 1.00s");
        totals.add("running 3 tests");
        assert_eq!((totals.passed, totals.failed, totals.ignored), (15, 1, 1));
    }
}
