//! A deterministic simulation: three replicas sharing one in-process state, 64 callers with a
//! backlog of ten windows, and a tiny simulated Close (fixed windows, out of phase with the
//! gateway's start, latency both ways). Zero 429s and at least 95 % of the limit accepted in
//! every full window while the backlog lasts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use close_gateway::close::ratelimit::RateLimitInfo;
use close_gateway::limiter::{AcquireRequest, Limiter, LimiterConfig, MemoryState, Priority};
use tokio::time::Instant;

/// Close's bucket: fixed windows of `window` starting at `origin`.
struct Close {
    limit: u64,
    window: Duration,
    origin: Instant,
    /// Per window index: accepted, rejected.
    counts: Mutex<BTreeMap<u64, (u64, u64)>>,
}

impl Close {
    fn handle(&self, now: Instant) -> (u16, RateLimitInfo) {
        let since = now - self.origin;
        let index = (since.as_nanos() / self.window.as_nanos()) as u64;
        let end = self.origin + self.window * (index as u32 + 1);
        let reset = end - now;
        let mut counts = self.counts.lock().expect("counts");
        let entry = counts.entry(index).or_default();
        let mut info = RateLimitInfo {
            limit: Some(self.limit),
            reset: Some(reset),
            ..RateLimitInfo::default()
        };
        if entry.0 >= self.limit {
            entry.1 += 1;
            info.remaining = Some(0);
            info.retry_after = Some(Duration::from_secs(reset.as_secs() + 1));
            return (429, info);
        }
        entry.0 += 1;
        info.remaining = Some(self.limit - entry.0);
        (200, info)
    }

    fn window_start(&self, index: u64) -> Instant {
        self.origin + self.window * index as u32
    }
}

struct Outcome {
    throttled: u64,
    /// Accepted per full window while a backlog existed.
    full_windows: Vec<u64>,
    drain: Duration,
}

async fn simulate(limit: u64, window: Duration, phase: Duration, calls: usize) -> Outcome {
    let start = Instant::now();
    let close = Arc::new(Close {
        limit,
        window,
        origin: start - phase,
        counts: Mutex::new(BTreeMap::new()),
    });
    let state = Arc::new(MemoryState::new());
    let replicas: Vec<Limiter> = (0..3)
        .map(|i| {
            let config = LimiterConfig {
                replica_id: format!("replica{i}"),
                ..LimiterConfig::default()
            };
            Limiter::with_memory(config, state.clone())
        })
        .collect();
    let last_admitted = Arc::new(Mutex::new(start));
    let mut callers = Vec::new();
    for c in 0..64 {
        let limiter = replicas[c % 3].clone();
        let close = close.clone();
        let last_admitted = last_admitted.clone();
        let priority = Priority::ALL[c % 3];
        let per_caller = calls / 64 + usize::from(c < calls % 64);
        callers.push(tokio::spawn(async move {
            for k in 0..per_caller {
                loop {
                    let req = AcquireRequest {
                        group: "lead.write".into(),
                        priority,
                        caller: format!("caller{c}"),
                        deadline: None,
                    };
                    let permit = limiter.acquire(req).await.expect("no deadline, no error");
                    {
                        let mut last = last_admitted.lock().expect("last");
                        *last = (*last).max(Instant::now());
                    }
                    let jitter = ((c + k) % 3) as u64;
                    tokio::time::sleep(Duration::from_millis(1 + jitter)).await;
                    let (status, info) = close.handle(Instant::now());
                    tokio::time::sleep(Duration::from_millis(1 + jitter % 2)).await;
                    limiter.observe(permit, status, &info).await;
                    if status != 429 {
                        break;
                    }
                }
            }
        }));
    }
    for caller in callers {
        caller.await.expect("caller");
    }
    let drain = Instant::now() - start;
    let last_admitted = *last_admitted.lock().expect("last");
    let counts = close.counts.lock().expect("counts");
    let mut outcome = Outcome {
        throttled: counts.values().map(|c| c.1).sum(),
        full_windows: Vec::new(),
        drain,
    };
    for (&index, &(accepted, _)) in counts.iter() {
        let begins = close.window_start(index);
        if begins >= start && begins + window <= last_admitted {
            outcome.full_windows.push(accepted);
        }
    }
    outcome
}

fn check(outcome: &Outcome, limit: u64, windows: usize) {
    assert_eq!(outcome.throttled, 0);
    assert!(
        outcome.full_windows.len() >= windows,
        "{:?}",
        outcome.full_windows
    );
    let least = (limit * 95).div_ceil(100);
    for accepted in &outcome.full_windows {
        assert!(
            *accepted >= least,
            "{:?} (limit {limit})",
            outcome.full_windows
        );
        assert!(*accepted <= limit);
    }
}

#[tokio::test(start_paused = true)]
async fn forty_per_second_with_no_429_and_full_windows() {
    let outcome = simulate(40, Duration::from_secs(1), Duration::from_millis(370), 400).await;
    check(&outcome, 40, 8);
    // Ten windows of work: cold start and phase cost at most one window.
    assert!(
        outcome.drain <= Duration::from_secs(11),
        "{:?}",
        outcome.drain
    );
}

#[tokio::test(start_paused = true)]
async fn search_sized_limit_loses_no_call_to_the_margin() {
    let outcome = simulate(16, Duration::from_secs(1), Duration::from_millis(820), 160).await;
    check(&outcome, 16, 8);
}

#[tokio::test(start_paused = true)]
async fn long_windows_of_the_old_era() {
    let outcome = simulate(
        320,
        Duration::from_secs(8),
        Duration::from_millis(3040),
        3200,
    )
    .await;
    check(&outcome, 320, 8);
}
