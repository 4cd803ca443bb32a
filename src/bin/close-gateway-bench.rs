//! `close-gateway-bench`: benchmarks of close-gateway against a local Close emulator.
//!
//! `close-gateway-bench limiter` measures the shared rate limiter (see docs/benchmark.md):
//! `cargo run --release --bin close-gateway-bench -- limiter [--quick] [--scenario NAME]`.
//! Exits 0 whether or not the targets are met; non-zero only when the harness fails.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use close_gateway::bench::{self, BenchError, Options, SCENARIOS};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "close-gateway-bench",
    version,
    about = "Benchmarks of close-gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The shared rate limiter: three replicas, Redis and the emulator, against direct clients.
    Limiter(LimiterArgs),
}

#[derive(Debug, clap::Args)]
struct LimiterArgs {
    /// A shorter smoke run: a burst of three windows instead of ten.
    #[arg(long)]
    quick: bool,
    /// Run only this scenario (repeatable): cold-start, limit-lowered, hidden-limits,
    /// shared-bucket, other-client.
    #[arg(long = "scenario", value_name = "NAME", value_parser = clap::builder::PossibleValuesParser::new(SCENARIOS))]
    scenarios: Vec<String>,
    /// Seed of the drawn limits (printed on every run).
    #[arg(long)]
    seed: Option<u64>,
    /// Windows' worth of low-priority calls per bucket in the burst (default 10, 3 with --quick).
    #[arg(long)]
    windows: Option<u32>,
    /// Concurrent callers, each with its own connection (at least 64 for the figures).
    #[arg(long, default_value_t = 64)]
    callers: usize,
    /// Gateway replicas.
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// Do not build close-gateway and close-emulator first (they must be next to this binary).
    #[arg(long)]
    no_build: bool,
    /// Only the gateway phases, not the direct clients.
    #[arg(long)]
    skip_direct: bool,
    /// Do not count the commands the replicas send to Redis (MONITOR costs Redis a little
    /// per command); only INFO commandstats is read.
    #[arg(long)]
    no_redis_tap: bool,
    /// Extra setting for every replica, e.g. `LIMITER_SAFETY_MARGIN=0.05` (repeatable).
    #[arg(long = "gateway-env", value_name = "KEY=VALUE", value_parser = key_value)]
    gateway_env: Vec<(String, String)>,
}

fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let Command::Limiter(args) = Cli::parse().command;
    let options = Options {
        seed: args.seed,
        scenarios: args.scenarios,
        windows: args
            .windows
            .unwrap_or(if args.quick { 3 } else { 10 })
            .max(1),
        callers: args.callers.max(3),
        replicas: args.replicas.max(1),
        build: !args.no_build,
        skip_direct: args.skip_direct,
        redis_tap: !args.no_redis_tap,
        gateway_env: args.gateway_env,
    };
    // Dropping the run on Ctrl-C or SIGTERM drops every child process handle: each is
    // killed (kill_on_drop), as on an error or a panic.
    let outcome = tokio::select! {
        outcome = bench::run(options) => outcome,
        () = interrupted() => Err(BenchError::Interrupted),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("close-gateway-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn interrupted() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = ctrl_c.await;
}
