//! A deterministic simulation: three replicas sharing one in-process state, 64 callers with a
//! backlog of ten windows, and a tiny simulated Close (fixed windows, out of phase with the
//! gateway's start, latency both ways). Zero 429s and at least 95 % of the limit accepted in
//! every full window while the backlog lasts.

mod limiter_support;

use std::sync::Arc;
use std::time::Duration;

use close_gateway::limiter::{Limiter, LimiterConfig, MemoryState};
use limiter_support::{Outcome, drive};

async fn simulate(limit: u64, window: Duration, phase: Duration, calls: usize) -> Outcome {
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
    drive(&replicas, "lead.write", limit, window, phase, calls).await
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
