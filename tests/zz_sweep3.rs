mod limiter_support;
use close_gateway::limiter::{MemoryState, Priority};
use limiter_support::Twists;
use limiter_support::sim::{Buckets, Call, drive_mix};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const GROUPS: [&str; 2] = ["task.write", "activity.write"];

#[tokio::test(start_paused = true)]
async fn sweep3() {
    let (mut total, mut runs, mut short, mut suspected) = (0, 0, 0, 0);
    for limit in [16u64, 24, 37, 39, 40, 42, 59, 69, 100] {
        for phase in (0..1000).step_by(45) {
            let replicas = limiter_support::mix::replicas(&Arc::new(MemoryState::new()), 3);
            let start = Instant::now();
            let bucket = (limit, Duration::from_secs(1), Duration::from_millis(phase));
            let close = Buckets::new()
                .bucket("write", &GROUPS[..1], bucket, start, Twists::default())
                .bucket("other", &GROUPS[1..], bucket, start, Twists::default());
            let calls: Vec<Call> = (0..(limit as usize * 20))
                .map(|i| Call {
                    group: GROUPS[i % 2].to_owned(),
                    priority: Priority::ALL[(i / 2) % 3],
                    replica: i % 3,
                })
                .collect();
            let outcome = drive_mix(&replicas, Arc::new(close), calls, 64).await;
            let mut msg = String::new();
            for (name, b) in &outcome.buckets {
                let n: u64 = b.windows.values().map(|w| w.1).sum();
                let last = b.windows.keys().max().copied().unwrap_or(0);
                let least = (limit * 95).div_ceil(100);
                let lows: Vec<(u64, u64)> = b
                    .windows
                    .range(2..last)
                    .map(|(i, w)| (*i, w.0))
                    .filter(|(_, a)| *a < least)
                    .collect();
                if n > 0 || !lows.is_empty() {
                    msg += &format!(
                        " {name}: 429s {:?} short {lows:?}",
                        b.windows
                            .iter()
                            .filter(|(_, w)| w.1 > 0)
                            .map(|(i, w)| (*i, w.1))
                            .collect::<Vec<_>>()
                    );
                }
                total += n;
                short += lows.len();
            }
            let sus: usize = replicas
                .iter()
                .map(|r| {
                    r.snapshot()
                        .iter()
                        .filter(|s| !s.suspected_shared_with.is_empty())
                        .count()
                })
                .sum();
            if sus > 0 {
                suspected += 1;
                msg += &format!(" SUSPECTED {sus}");
            }
            if !msg.is_empty() {
                println!("limit {limit} phase {phase}:{msg}");
            }
            runs += 1;
        }
    }
    println!(
        "TOTAL 429s {total} in {runs} runs; short windows {short}; suspected at end {suspected}"
    );
}
