//! `close-emulator`: the in-memory Close of `close_gateway::emulator` as a process.
//!
//! Prints `close-emulator listening on http://ADDR/api/v1` on stdout once bound, serves until
//! SIGINT or SIGTERM. Every flag has an environment variable; without flags it behaves like
//! `EmulatorConfig::default()` (key `test-key`, generous limits), with `--dev` like
//! `EmulatorConfig::dev()` (sample data, 40 requests per key and second).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use close_gateway::emulator::{
    ApiKey, Emulator, EmulatorConfig, HeaderEra, HiddenLimit, LegacyBody,
};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "close-emulator",
    version,
    about = "An in-memory Close API for tests"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "CLOSE_EMULATOR_LISTEN", default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Start from the dev profile: sample data and Close-like limits.
    #[arg(long, env = "CLOSE_EMULATOR_DEV")]
    dev: bool,
    /// Accepted API keys, `KEY` or `KEY:ORGANIZATION_ID` (default organization `orga_test`).
    #[arg(
        long = "api-key",
        env = "CLOSE_EMULATOR_API_KEYS",
        value_delimiter = ','
    )]
    api_keys: Vec<String>,
    /// Load the sample data.
    #[arg(long, env = "CLOSE_EMULATOR_SEED")]
    seed: bool,
    /// Per-key limit of every bucket, per window.
    #[arg(long, env = "CLOSE_EMULATOR_LIMIT")]
    limit: Option<u64>,
    /// Per-key limit of one bucket, `BUCKET=N` (buckets: lead_read, write, task_read,
    /// activity_read, search, other).
    #[arg(
        long = "bucket-limit",
        env = "CLOSE_EMULATOR_BUCKET_LIMITS",
        value_delimiter = ','
    )]
    bucket_limits: Vec<String>,
    /// Organization limit as a multiple of the key limit.
    #[arg(long, env = "CLOSE_EMULATOR_ORG_MULTIPLIER")]
    org_multiplier: Option<u64>,
    /// Rate-limit window in milliseconds.
    #[arg(long, env = "CLOSE_EMULATOR_WINDOW_MS")]
    window_ms: Option<u64>,
    /// Unannounced tighter limit, `BUCKET=N`.
    #[arg(
        long = "hidden-limit",
        env = "CLOSE_EMULATOR_HIDDEN_LIMITS",
        value_delimiter = ','
    )]
    hidden_limits: Vec<String>,
    /// Probability of an unannounced 429, `BUCKET=P`.
    #[arg(
        long = "hidden-probability",
        env = "CLOSE_EMULATOR_HIDDEN_PROBABILITIES",
        value_delimiter = ','
    )]
    hidden_probabilities: Vec<String>,
    /// Rate-limit header form: legacy2017, era2022, current, current-lower-semicolon.
    #[arg(long, env = "CLOSE_EMULATOR_ERA")]
    era: Option<HeaderEra>,
    /// 429 body: none, nested, flat.
    #[arg(long, env = "CLOSE_EMULATOR_LEGACY_BODY")]
    legacy_body: Option<LegacyBody>,
    /// Latency added to every request, in milliseconds.
    #[arg(long, env = "CLOSE_EMULATOR_LATENCY_MS")]
    latency_ms: Option<u64>,
    /// Probability of a 502, 503 or 504.
    #[arg(long, env = "CLOSE_EMULATOR_ERROR_RATE")]
    error_rate: Option<f64>,
    /// Probability of a dropped connection.
    #[arg(long, env = "CLOSE_EMULATOR_RESET_RATE")]
    reset_rate: Option<f64>,
    /// Search cursor lifetime in seconds.
    #[arg(long, env = "CLOSE_EMULATOR_CURSOR_TTL_SECS")]
    cursor_ttl_secs: Option<u64>,
    /// Results one search can page through.
    #[arg(long, env = "CLOSE_EMULATOR_SEARCH_RESULT_CAP")]
    search_result_cap: Option<usize>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = match config(&args) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("close-emulator: {message}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("close-emulator: cannot listen on {}: {error}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let emulator = match Emulator::start(listener, config).await {
        Ok(emulator) => emulator,
        Err(error) => {
            eprintln!("close-emulator: {error}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = close_gateway::server::shutdown_signal();
    println!("close-emulator listening on {}", emulator.base_url());
    shutdown.await;
    tracing::info!("emulator shutting down");
    emulator.shutdown();
    ExitCode::SUCCESS
}

fn config(args: &Args) -> Result<EmulatorConfig, String> {
    let mut config = if args.dev {
        EmulatorConfig::dev()
    } else {
        EmulatorConfig::default()
    };
    if !args.api_keys.is_empty() {
        config.api_keys = args
            .api_keys
            .iter()
            .map(|spec| match spec.split_once(':') {
                Some((key, org)) => ApiKey::new(key, org),
                None => ApiKey::new(spec, "orga_test"),
            })
            .collect();
    }
    config.seeded |= args.seed;
    let limits = &mut config.limits;
    if let Some(limit) = args.limit {
        limits.default_limit = limit;
        limits.bucket_limits.clear();
    }
    for (bucket, limit) in pairs(&args.bucket_limits)? {
        limits.bucket_limits.insert(bucket, limit);
    }
    if let Some(m) = args.org_multiplier {
        limits.org_multiplier = m;
    }
    if let Some(ms) = args.window_ms {
        limits.window = Duration::from_millis(ms.max(1));
    }
    for (bucket, limit) in pairs::<u64>(&args.hidden_limits)? {
        limits
            .hidden
            .entry(bucket)
            .or_insert_with(HiddenLimit::default)
            .limit = Some(limit);
    }
    for (bucket, p) in pairs::<f64>(&args.hidden_probabilities)? {
        limits
            .hidden
            .entry(bucket)
            .or_insert_with(HiddenLimit::default)
            .probability = p;
    }
    if let Some(era) = args.era {
        config.era = era;
    }
    if let Some(body) = args.legacy_body {
        config.legacy_body = body;
    }
    if let Some(ms) = args.latency_ms {
        config.faults.latency = Duration::from_millis(ms);
    }
    if let Some(rate) = args.error_rate {
        config.faults.error_rate = rate;
    }
    if let Some(rate) = args.reset_rate {
        config.faults.reset_rate = rate;
    }
    if let Some(secs) = args.cursor_ttl_secs {
        config.cursor_ttl = Duration::from_secs(secs);
    }
    if let Some(cap) = args.search_result_cap {
        config.search_result_cap = cap;
    }
    Ok(config)
}

/// `NAME=VALUE` items.
fn pairs<T: std::str::FromStr>(items: &[String]) -> Result<Vec<(String, T)>, String> {
    let mut out = Vec::new();
    for item in items {
        let parsed = item
            .split_once('=')
            .and_then(|(name, value)| Some((name.trim().to_owned(), value.trim().parse().ok()?)));
        match parsed {
            Some(pair) => out.push(pair),
            None => return Err(format!("expected NAME=VALUE, got {item:?}")),
        }
    }
    Ok(out)
}
