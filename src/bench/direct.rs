//! The situation before the gateway: every caller talks to Close itself, with no shared
//! state, and after a 429 sleeps for `Retry-After` and tries again (what the official
//! Python client does). Also the "other client" of a scenario: a fixed-rate user of the
//! same key outside the gateway.

use std::time::Duration;

use reqwest::{Client, StatusCode};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::control::API_KEY;
use super::drive::{CallRecord, Outcome, run_jobs};
use super::error::BenchError;
use super::ops::{self, Group};
use super::scenario::{OtherClient, WINDOW};
use super::workload::Plan;

/// One HTTP/2 connection per caller, like one process each.
pub fn clients(callers: usize) -> Result<Vec<Client>, BenchError> {
    (0..callers)
        .map(|_| {
            Client::builder()
                .http2_prior_knowledge()
                .tcp_nodelay(true)
                .build()
                .map_err(|e| BenchError::Control(e.to_string()))
        })
        .collect()
}

/// Runs the plan straight against the emulator; each call gives up at `timeout`.
pub async fn drive_direct(
    plan: &Plan,
    clients: &[Client],
    base_url: &str,
    t0: Instant,
    timeout: Duration,
) -> Vec<CallRecord> {
    let guard = timeout + Duration::from_secs(5);
    run_jobs(&plan.jobs, t0, guard, |job| {
        let client = clients.get(job.caller).cloned();
        let base_url = base_url.to_owned();
        async move {
            let Some(client) = client else {
                return Outcome::Failed("no connection".to_owned());
            };
            let deadline = Instant::now() + timeout;
            naive_call(&client, &base_url, job.group, job.seq, deadline).await
        }
    })
    .await
}

/// Sends until an answer other than 429, sleeping `Retry-After` after each 429.
async fn naive_call(
    client: &Client,
    base_url: &str,
    group: Group,
    seq: u64,
    deadline: Instant,
) -> Outcome {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Outcome::Failed("timeout".to_owned());
        }
        let retry_after = match send(client, base_url, group, seq, left).await {
            Ok((status, _)) if status.is_success() => return Outcome::Ok,
            Ok((StatusCode::TOO_MANY_REQUESTS, retry_after)) => retry_after,
            Ok((status, _)) => return Outcome::Failed(format!("http {}", status.as_u16())),
            Err(error) => {
                let label = if error.is_timeout() {
                    "timeout"
                } else {
                    "transport"
                };
                return Outcome::Failed(label.to_owned());
            }
        };
        let wait = retry_after.unwrap_or(Duration::from_secs(1));
        if Instant::now() + wait >= deadline {
            return Outcome::Failed("http 429".to_owned());
        }
        tokio::time::sleep(wait).await;
    }
}

/// One request; the status and the `Retry-After` of a 429.
async fn send(
    client: &Client,
    base_url: &str,
    group: Group,
    seq: u64,
    timeout: Duration,
) -> Result<(StatusCode, Option<Duration>), reqwest::Error> {
    let (method, path, query, body) = ops::http_request(group, seq);
    let mut builder = client
        .request(method, format!("{base_url}{path}"))
        .basic_auth(API_KEY, Some(""))
        .timeout(timeout);
    if !query.is_empty() {
        builder = builder.query(&query);
    }
    if let Some(body) = body {
        builder = builder.json(&body);
    }
    let response = builder.send().await?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    // Read the body so that the stream is done with.
    response.bytes().await?;
    Ok((status, retry_after))
}

/// What the other client saw: when each request was sent, and whether it got a 429.
#[derive(Debug, Clone, Default)]
pub struct OtherLog {
    pub sent: Vec<(Instant, bool)>,
}

impl OtherLog {
    pub fn throttled(&self) -> u64 {
        self.sent.iter().filter(|(_, t)| *t).count() as u64
    }
}

/// Sends the other client's requests at their fixed rate, starting `other.from` windows
/// after `t0`; no retries.
pub async fn run_other(other: OtherClient, base_url: String, t0: Instant) -> OtherLog {
    let Ok(client) = Client::builder().tcp_nodelay(true).build() else {
        return OtherLog::default();
    };
    let total = other.per_window * other.windows;
    let interval = WINDOW.div_f64(other.per_window.max(1) as f64);
    let start = t0 + WINDOW.mul_f64(other.from);
    let mut set = JoinSet::new();
    for i in 0..total {
        let (client, base_url) = (client.clone(), base_url.clone());
        let at = start + interval.mul_f64(i as f64);
        set.spawn(async move {
            tokio::time::sleep_until(at).await;
            let sent = Instant::now();
            let result = send(&client, &base_url, other.group, i, Duration::from_secs(5)).await;
            let throttled = matches!(result, Ok((StatusCode::TOO_MANY_REQUESTS, _)));
            (sent, throttled)
        });
    }
    let mut log = OtherLog::default();
    while let Some(joined) = set.join_next().await {
        if let Ok(entry) = joined {
            log.sent.push(entry);
        }
    }
    log.sent.sort_by_key(|(t, _)| *t);
    log
}
