//! A deterministic simulation: three replicas sharing one in-process state, 64 callers with a
//! backlog of ten windows, and a tiny simulated Close (fixed windows, out of phase with the
//! gateway's start, latency both ways). Zero 429s and at least 95 % of the limit accepted in
//! every full window while the backlog lasts.

mod limiter_support;

use std::sync::Arc;
use std::time::Duration;

use close_gateway::limiter::{Limiter, LimiterConfig, MemoryState};
use limiter_support::{Outcome, Twists, drive_with};

async fn simulate(limit: u64, window: Duration, phase: Duration, calls: usize) -> Outcome {
    simulate_with(limit, window, phase, calls, Twists::default()).await
}

async fn simulate_with(
    limit: u64,
    window: Duration,
    phase: Duration,
    calls: usize,
    twists: Twists,
) -> Outcome {
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
    drive_with(&replicas, "lead.write", limit, window, phase, calls, twists).await
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

#[tokio::test(start_paused = true)]
async fn a_limit_lowered_mid_run_costs_429s_only_in_the_window_it_changes() {
    let twists = Twists {
        lowered: Some((4, 20)),
        ..Twists::default()
    };
    let outcome = simulate_with(
        40,
        Duration::from_secs(1),
        Duration::from_millis(370),
        300,
        twists,
    )
    .await;
    for (&index, &(accepted, rejected)) in &outcome.windows {
        if index != 4 {
            assert_eq!(rejected, 0, "window {index}: {:?}", outcome.windows);
        }
        assert!(accepted <= if index >= 4 { 20 } else { 40 });
    }
    // Calls admitted for 40 before the first answer of window 4 told of 20.
    let (_, rejected) = outcome.windows[&4];
    assert!(rejected <= 3, "{:?}", outcome.windows);
    assert_eq!(outcome.windows[&6], (20, 0));
}

#[tokio::test(start_paused = true)]
async fn another_client_on_the_key_is_absorbed_after_the_window_it_appears() {
    let twists = Twists {
        other_client: Some((3, 10)),
        ..Twists::default()
    };
    let outcome = simulate_with(
        40,
        Duration::from_secs(1),
        Duration::from_millis(370),
        300,
        twists,
    )
    .await;
    for (&index, &(accepted, rejected)) in &outcome.windows {
        assert!(accepted <= 40);
        if index != 3 {
            assert_eq!(rejected, 0, "window {index}: {:?}", outcome.windows);
        }
    }
    // The gateway takes what the other client leaves.
    assert_eq!(outcome.windows[&5], (40, 0));
}
