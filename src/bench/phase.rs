//! One phase of a scenario: a fresh emulator, and either three fresh gateway replicas on an
//! emptied Redis or the direct clients; the burst driven through them together with the
//! scenario's events (a limit change, another client); then everything the report needs,
//! read before the processes are killed.

use std::net::SocketAddr;
use std::time::Duration;

use futures::future::try_join_all;
use tokio::time::Instant;

use super::clock::EmuClock;
use super::control::{API_KEY, EmulatorProc};
use super::direct::{self, OtherLog};
use super::drive::{self, CallRecord};
use super::error::BenchError;
use super::procs::{self, Binaries};
use super::redis_stats::{RedisCounts, RedisStats};
use super::scenario::{Scenario, WINDOW};
use super::workload::Plan;
use crate::proto::close::v1::GetRateLimitsRequest;
use crate::proto::close::v1::rate_limit_service_client::RateLimitServiceClient;

/// Time between connecting the callers and the burst, so that every call task is spawned
/// and waiting when it starts.
const LEAD_IN: Duration = Duration::from_millis(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Gateway,
    Direct,
}

/// What the harness shares between phases.
pub struct Env<'a> {
    pub bins: &'a Binaries,
    pub redis: &'a mut RedisStats,
    pub redis_url: &'a str,
    pub replicas: usize,
    /// Count the commands the replicas send with a `MONITOR` tap.
    pub tap: bool,
    /// Extra gateway settings from the command line (`KEY=VALUE`).
    pub gateway_env: &'a [(String, String)],
}

/// Everything measured in one phase.
pub struct Phase {
    pub mode: Mode,
    pub clock: EmuClock,
    pub t0: Instant,
    pub records: Vec<CallRecord>,
    pub emulator: crate::emulator::Stats,
    pub other: Option<OtherLog>,
    /// When the limit change was sent.
    pub change_at: Option<Instant>,
    /// What Redis did (gateway phase).
    pub redis: RedisCounts,
    /// Queue waits the replicas logged: gateway group, priority, milliseconds.
    pub queue_waits: Vec<(String, String, f64)>,
    /// What replica 0 says of each group (gateway phase, when served).
    pub learned: Result<Vec<Learned>, String>,
}

pub async fn run(
    mode: Mode,
    scenario: &Scenario,
    plan: &Plan,
    env: &mut Env<'_>,
    timeout: Duration,
) -> Result<Phase, BenchError> {
    let emulator = EmulatorProc::start(&env.bins.emulator, scenario).await?;
    let clock = emulator.clock().await?;
    let mut replicas = Vec::new();
    let mut addrs: Vec<SocketAddr> = Vec::new();
    let mut tap = None;
    if mode == Mode::Gateway {
        env.redis.reset().await?;
        if env.tap {
            tap = Some(env.redis.tap().await?);
        }
        let settings = gateway_settings(&emulator.base_url, env);
        let starts =
            (0..env.replicas).map(|i| procs::start_gateway(&env.bins.gateway, i, &settings));
        for (proc, addr) in try_join_all(starts).await? {
            replicas.push(proc);
            addrs.push(addr);
        }
    }
    let (grpc, http) = match mode {
        Mode::Gateway => (
            drive::connect_callers(plan.callers, &addrs).await?,
            Vec::new(),
        ),
        Mode::Direct => (Vec::new(), direct::clients(plan.callers)?),
    };
    let t0 = Instant::now() + LEAD_IN;
    let load = async {
        match mode {
            Mode::Gateway => drive::drive_gateway(plan, &grpc, t0, timeout).await,
            Mode::Direct => {
                direct::drive_direct(plan, &http, &emulator.base_url, t0, timeout).await
            }
        }
    };
    let change = async {
        let Some(change) = &scenario.change else {
            return Ok(None);
        };
        tokio::time::sleep_until(t0 + WINDOW.mul_f64(change.at)).await;
        let at = Instant::now();
        emulator.set_limit(change.bucket, change.to).await?;
        Ok::<_, BenchError>(Some(at + at.elapsed() / 2))
    };
    let other = async {
        match &scenario.other {
            Some(other) => {
                Some(direct::run_other(other.clone(), emulator.base_url.clone(), t0).await)
            }
            None => None,
        }
    };
    let (records, change_at, other) = tokio::join!(load, change, other);
    let change_at = change_at?;
    let stats = emulator.stats().await?;
    let mut redis = RedisCounts::default();
    if let Some(tap) = tap {
        redis.sent = Some(env.redis.untap(tap).await?);
    }
    if mode == Mode::Gateway {
        redis.executed = env.redis.executed().await?;
    }
    // After the counts: GetRateLimits may read Redis itself.
    let learned = match mode {
        Mode::Gateway => learned(&addrs).await,
        Mode::Direct => Err("direct".to_owned()),
    };
    let queue_waits = replicas
        .iter()
        .flat_map(|r| r.kept())
        .filter_map(|line| parse_admitted(&line))
        .collect();
    drop(replicas);
    Ok(Phase {
        mode,
        clock,
        t0,
        records,
        emulator: stats,
        other,
        change_at,
        redis,
        queue_waits,
        learned,
    })
}

/// `{"message": "limiter admitted call", "group": "lead.read", "priority": "high",
/// "wait_ms": 3, ...}` → (group, priority, wait).
pub fn parse_admitted(line: &str) -> Option<(String, String, f64)> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let text = |key: &str| value.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let wait = value.get("wait_ms").and_then(serde_json::Value::as_f64)?;
    Some((text("group")?, text("priority")?, wait))
}

/// The replicas' environment: the emulator as Close, the shared Redis, quiet logs.
fn gateway_settings(base_url: &str, env: &Env<'_>) -> Vec<(String, String)> {
    let mut settings: Vec<(String, String)> = [
        ("CLOSE_API_KEY", API_KEY),
        ("CLOSE_BASE_URL", base_url),
        ("REDIS_URL", env.redis_url),
        // The limiter's line per admitted call carries its queue wait.
        ("LOG_FORMAT", "json"),
        ("LOG_LEVEL", "warn,close_gateway::limiter::dispatch=debug"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    settings.extend(env.gateway_env.iter().cloned());
    settings
}

/// One group as `GetRateLimits` describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Learned {
    pub group: String,
    pub limit: u64,
    pub source: String,
    pub shared_with: Vec<String>,
    pub served_in: String,
}

/// `GetRateLimits` of the first replica, when the gateway serves it.
async fn learned(addrs: &[SocketAddr]) -> Result<Vec<Learned>, String> {
    let addr = addrs.first().ok_or("no replica")?;
    let mut client = RateLimitServiceClient::connect(format!("http://{addr}"))
        .await
        .map_err(|e| e.to_string())?;
    let mut request = tonic::Request::new(GetRateLimitsRequest {});
    request.set_timeout(Duration::from_secs(5));
    let response = client
        .get_rate_limits(request)
        .await
        .map_err(|s| format!("{:?}", s.code()))?;
    Ok(response
        .into_inner()
        .groups
        .into_iter()
        .map(|g| Learned {
            source: format!("{:?}", g.source()),
            group: g.group,
            limit: g.limit,
            shared_with: g.suspected_shared_with,
            served_in: g.served_in,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admitted_lines_give_the_queue_wait() {
        let line = r#"{"timestamp":"2026-01-01T00:00:00Z","level":"DEBUG","message":"limiter admitted call","group":"lead.read","caller":"bench-60","priority":"high","wait_ms":12,"remaining":3,"key":0,"target":"close_gateway::limiter::dispatch"}"#;
        let parsed = parse_admitted(line);
        assert_eq!(parsed, Some(("lead.read".into(), "high".into(), 12.0)));
        assert_eq!(parse_admitted("limiter admitted call group=x"), None);
        assert_eq!(parse_admitted(r#"{"group":"x","priority":"low"}"#), None);
    }
}
