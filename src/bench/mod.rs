//! `close-gateway-bench limiter`: measures the shared rate limiter the way the issue that
//! asked for it states its targets, with every part real and local.
//!
//! Each scenario runs twice on fresh processes. Through the gateway: the emulator (Close,
//! with limits drawn from the seed and never told to the gateway), Redis emptied, three
//! gateway replicas as separate processes sharing it, and at least 64 callers, each with
//! its own connection to one replica, issuing a burst of ten windows' worth of `low` calls
//! per bucket plus `normal` and `high` streams. Then directly: the same calls from the same
//! callers straight to a fresh emulator, each retrying after `Retry-After` on a 429, as
//! services did before the gateway. The report compares the two and checks the targets.
//!
//! Files: `scenario` (what each scenario does), `workload` (who calls what, when), `ops`
//! (the call per group), `procs` / `control` (processes and the emulator's control
//! endpoints), `clock` (emulator windows in local time), `drive` / `direct` (load drivers),
//! `phase` (one run), `stats` / `figures` (arithmetic), `targets`, `report`.

mod clock;
mod control;
mod direct;
mod drive;
mod error;
mod figures;
mod ops;
mod phase;
mod procs;
mod redis_stats;
mod report;
mod scenario;
mod stats;
mod targets;
mod workload;

use std::time::Duration;

pub use error::BenchError;
pub use scenario::NAMES as SCENARIOS;

use phase::{Env, Mode};
use procs::Binaries;
use redis_stats::RedisStats;
use scenario::{Scenario, WINDOW};

/// How a run is shaped; see `close-gateway-bench limiter --help`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seed of the limits; random (and printed) when unset.
    pub seed: Option<u64>,
    /// Scenarios to run; all when empty.
    pub scenarios: Vec<String>,
    /// Windows' worth of `low` calls per bucket.
    pub windows: u32,
    pub callers: usize,
    pub replicas: usize,
    /// Build the gateway and emulator first when run by cargo.
    pub build: bool,
    /// Leave out the direct-client phases.
    pub skip_direct: bool,
    /// Count the commands the replicas send to Redis with a `MONITOR` tap (it costs Redis
    /// some time per command).
    pub redis_tap: bool,
    /// Extra gateway environment, `KEY=VALUE`.
    pub gateway_env: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seed: None,
            scenarios: Vec::new(),
            windows: 10,
            callers: 64,
            replicas: 3,
            build: true,
            skip_direct: false,
            redis_tap: true,
            gateway_env: Vec::new(),
        }
    }
}

/// Runs the scenarios and prints the report. Missed targets are reported, not errors.
pub async fn run(options: Options) -> Result<(), BenchError> {
    let names: Vec<String> = if options.scenarios.is_empty() {
        SCENARIOS.iter().map(|s| (*s).to_owned()).collect()
    } else {
        options.scenarios.clone()
    };
    let seed = options.seed.unwrap_or_else(random_seed);
    let scenarios = names
        .iter()
        .map(|n| Scenario::build(n, seed, options.windows))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(pinned) = scenarios.iter().find(|s| s.pinned && options.replicas < 2) {
        return Err(BenchError::TooFewReplicas(pinned.name));
    }
    let bins = Binaries::locate(options.build)?;
    let (_redis_proc, redis_url) = procs::start_redis().await?;
    let mut redis = RedisStats::connect(&redis_url).await?;
    println!(
        "close-gateway-bench limiter: seed {seed} (--seed {seed} repeats the limits), {} windows' burst, \
         {} callers, {} replicas",
        options.windows, options.callers, options.replicas
    );
    let mut verdicts = Vec::new();
    for scenario in &scenarios {
        let plan = workload::plan(scenario, options.windows, options.callers, options.replicas);
        let timeout = call_timeout(scenario, &plan);
        print!(
            "{}",
            report::scenario_header(scenario, plan.jobs.len() as u64)
        );
        let mut env = Env {
            bins: &bins,
            redis: &mut redis,
            redis_url: &redis_url,
            replicas: options.replicas,
            tap: options.redis_tap,
            gateway_env: &options.gateway_env,
        };
        let gateway = phase::run(Mode::Gateway, scenario, &plan, &mut env, timeout).await?;
        let figures = figures::compute(scenario, &gateway);
        print!(
            "{}",
            report::phase_table(scenario, &figures, options.replicas, plan.callers)
        );
        verdicts.extend(targets::evaluate(scenario, &figures));
        if options.skip_direct {
            continue;
        }
        let direct = phase::run(Mode::Direct, scenario, &plan, &mut env, timeout).await?;
        let figures = figures::compute(scenario, &direct);
        print!(
            "{}",
            report::phase_table(scenario, &figures, options.replicas, plan.callers)
        );
    }
    print!("{}", report::summary(&verdicts));
    Ok(())
}

/// How long a call may wait: three times the slowest bucket's ideal drain, plus slack.
fn call_timeout(scenario: &Scenario, plan: &workload::Plan) -> Duration {
    let mut longest = 0.0f64;
    for bucket in scenario.buckets() {
        let lowest = (0..100)
            .map(|w| scenario.capacity_at(bucket, f64::from(w) / 10.0))
            .fold(f64::INFINITY, f64::min)
            .max(1.0);
        longest = longest.max(plan.bucket_calls(bucket) as f64 / lowest);
    }
    WINDOW.mul_f64(longest * 3.0) + Duration::from_secs(10)
}

fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    (nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)
}
