//! The benchmark's workload against a simulated Close that answers, under a paused clock: 56
//! callers drain a `low` backlog of ten windows while 4 `normal` and 4 `high` callers each
//! send a tenth of the limit, evenly spaced, over three replicas sharing one state; and,
//! optionally, another client of the same key that sends outside the gateway and does not
//! retry.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use close_gateway::limiter::{AcquireRequest, Limiter, LimiterConfig, MemoryState, Priority};
use tokio::time::Instant;

use super::{Close, Twists};

/// Another client of the key: from `from` windows after the start (fractions allowed), for
/// `windows` windows, `share` of the limit, evenly spaced.
#[derive(Debug, Clone, Copy)]
pub struct OtherClient {
    pub from: f64,
    pub windows: f64,
    pub share: f64,
}

pub struct MixOutcome {
    /// Close's counts per window index (every client's).
    pub close: BTreeMap<u64, (u64, u64)>,
    /// 429s the other client got, per window index.
    pub other_rejected: BTreeMap<u64, u64>,
    /// The index of the window in which the other client sent its first call.
    pub other_first: Option<u64>,
    /// The `high` calls' waits for their first permit.
    pub high_waits: Vec<Duration>,
}

impl MixOutcome {
    /// 429s the gateway's calls got, per window index.
    pub fn ours_rejected(&self) -> BTreeMap<u64, u64> {
        self.close
            .iter()
            .map(|(&i, &(_, rejected))| {
                (
                    i,
                    rejected - self.other_rejected.get(&i).copied().unwrap_or(0),
                )
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// `n` replicas sharing `state`.
pub fn replicas(state: &Arc<MemoryState>, n: usize) -> Vec<Limiter> {
    (0..n)
        .map(|i| {
            let config = LimiterConfig {
                replica_id: format!("replica{i}"),
                ..LimiterConfig::default()
            };
            Limiter::with_memory(config, state.clone())
        })
        .collect()
}

/// The mix beside a client sending `share` of `limit` for three windows from `from` windows
/// in; what misses the targets (`other_client_misses`).
pub async fn misses_beside_a_client(limit: u64, from: f64, share: f64) -> Option<String> {
    let other = OtherClient {
        from,
        windows: 3.0,
        share,
    };
    let outcome = benchmark_mix(limit, Some(other), None).await;
    other_client_misses(&outcome, limit)
}

/// What misses the targets beside another client: 429s of ours after the window it appears
/// in, or a full window other than that one below 95 % of `limit`; None without a miss.
pub fn other_client_misses(outcome: &MixOutcome, limit: u64) -> Option<String> {
    let first = outcome.other_first.expect("the client ran");
    let ours = outcome.ours_rejected();
    let later: u64 = ours.range(first + 1..).map(|(_, n)| n).sum();
    let close = &outcome.close;
    let last = close.keys().max().copied().unwrap_or_default();
    let least = (limit * 95).div_ceil(100);
    let short: Vec<(u64, u64)> = close
        .range(1..last)
        .filter(|(index, count)| **index != first && count.0 < least)
        .map(|(index, count)| (*index, count.0))
        .collect();
    if later == 0 && short.is_empty() {
        return None;
    }
    Some(format!(
        "client from window {first}; our 429s per window {ours:?}; windows below 95 % {short:?}"
    ))
}

/// Runs the mix at `limit` per one-second window, Close's windows 370 ms out of step; from
/// window `lowered.0` on, Close's limit is `lowered.1`.
pub async fn benchmark_mix(
    limit: u64,
    other: Option<OtherClient>,
    lowered: Option<(u64, u64)>,
) -> MixOutcome {
    let r = replicas(&Arc::new(MemoryState::new()), 3);
    let window = Duration::from_secs(1);
    let start = Instant::now();
    let close = Arc::new(Close {
        limit,
        window,
        origin: start - Duration::from_millis(370),
        twists: Twists {
            lowered,
            ..Twists::default()
        },
        counts: Mutex::new(BTreeMap::new()),
    });
    let lows = Arc::new(Mutex::new(limit * 10));
    let mut tasks = Vec::new();
    for c in 0..56 {
        let (limiter, close, lows) = (r[c % 3].clone(), close.clone(), lows.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                {
                    let mut left = lows.lock().expect("lows");
                    if *left == 0 {
                        return;
                    }
                    *left -= 1;
                }
                send(&limiter, &close, Priority::Low, format!("bulk{c}")).await;
            }
        }));
    }
    let waits = Arc::new(Mutex::new(Vec::new()));
    // Each stream: a tenth of the limit over ten windows, from four callers out of step.
    let gap = window * 40 / limit as u32;
    for (priority, first) in [(Priority::High, 60), (Priority::Normal, 56)] {
        for c in 0..4 {
            let (limiter, close) = (r[(first + c) % 3].clone(), close.clone());
            let waits = waits.clone();
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(gap * c as u32 / 4).await;
                for _ in 0..limit / 4 {
                    let began = Instant::now();
                    let wait = send(&limiter, &close, priority, format!("stream{c}")).await;
                    if priority == Priority::High {
                        waits.lock().expect("waits").push(wait);
                    }
                    tokio::time::sleep(gap.saturating_sub(began.elapsed())).await;
                }
            }));
        }
    }
    let other_rejected = Arc::new(Mutex::new(BTreeMap::new()));
    let mut other_first = None;
    if let Some(o) = other {
        let first = start + window.mul_f64(o.from);
        other_first = Some(close.window_index(first));
        let calls = (o.windows * o.share * limit as f64).round() as u32;
        let gap = window.mul_f64(1.0 / (o.share * limit as f64));
        let (close, rejected) = (close.clone(), other_rejected.clone());
        tasks.push(tokio::spawn(async move {
            for k in 0..calls {
                tokio::time::sleep_until(first + gap * k).await;
                let now = Instant::now();
                if close.handle(now).0 == 429 {
                    *rejected
                        .lock()
                        .expect("rejected")
                        .entry(close.window_index(now))
                        .or_insert(0) += 1;
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("caller");
    }
    let close = close.counts.lock().expect("counts").clone();
    let other_rejected = other_rejected.lock().expect("rejected").clone();
    let high_waits = waits.lock().expect("waits").clone();
    MixOutcome {
        close,
        other_rejected,
        other_first,
        high_waits,
    }
}

/// One call through `limiter` to `close`, retried on 429; returns the wait for the first
/// permit.
async fn send(limiter: &Limiter, close: &Close, priority: Priority, caller: String) -> Duration {
    let asked = Instant::now();
    let mut first = None;
    loop {
        let req = AcquireRequest {
            group: "lead.read".into(),
            priority,
            caller: caller.clone(),
            deadline: None,
        };
        let permit = limiter.acquire(req).await.expect("permit");
        let waited = *first.get_or_insert(asked.elapsed());
        tokio::time::sleep(Duration::from_millis(2)).await;
        let (status, info) = close.handle(Instant::now());
        tokio::time::sleep(Duration::from_millis(2)).await;
        limiter.observe(permit, status, &info).await;
        if status != 429 {
            return waited;
        }
    }
}
