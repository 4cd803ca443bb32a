//! Two groups of ours in one Close bucket that nobody declared (or, to compare, in two
//! buckets of the same limit and windows): three replicas sharing one in-process state,
//! closed-loop workers, a simulated Close. Used by `limiter_shared.rs` and the sweeps.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use close_gateway::limiter::{Limiter, MemoryState, Priority};
use tokio::time::Instant;

use super::Twists;
use super::sim::{BucketOutcome, Buckets, Call, drive_mix};

pub const GROUPS: [&str; 2] = ["task.write", "activity.write"];

/// `calls` calls over 64 workers and three replicas; the first `alone` go to the first group
/// only, the rest alternate between the two. Priorities vary.
pub async fn shared(limit: u64, phase: u64, calls: usize, alone: usize) -> BucketOutcome {
    let (mut buckets, _) = shared_in(limit, phase, calls, alone, true).await;
    buckets.remove("write").expect("the bucket")
}

/// `shared`, or (`together` false) the same load on two buckets of the same limit and
/// windows, `write` and `other`, one per group; every bucket's outcome, with the replicas
/// to look at what they report.
pub async fn shared_in(
    limit: u64,
    phase: u64,
    calls: usize,
    alone: usize,
    together: bool,
) -> (BTreeMap<String, BucketOutcome>, Vec<Limiter>) {
    run(limit, phase, calls, alone, together, false).await
}

/// `shared`, with the first group's calls all on replica 0 and the second's on replicas 1
/// and 2 (as when each caller's gRPC channel stays on one replica): no replica sees both.
pub async fn split(limit: u64, phase: u64, calls: usize) -> BucketOutcome {
    split_in(limit, phase, calls).await.0
}

/// `split`, with the replicas to look at what they report.
pub async fn split_in(limit: u64, phase: u64, calls: usize) -> (BucketOutcome, Vec<Limiter>) {
    let (mut buckets, replicas) = run(limit, phase, calls, 0, true, true).await;
    (buckets.remove("write").expect("the bucket"), replicas)
}

async fn run(
    limit: u64,
    phase: u64,
    calls: usize,
    alone: usize,
    together: bool,
    split: bool,
) -> (BTreeMap<String, BucketOutcome>, Vec<Limiter>) {
    let replicas = super::mix::replicas(&Arc::new(MemoryState::new()), 3);
    let start = Instant::now();
    let bucket = (limit, Duration::from_secs(1), Duration::from_millis(phase));
    let close = if together {
        Buckets::new().bucket("write", &GROUPS, bucket, start, Twists::default())
    } else {
        Buckets::new()
            .bucket("write", &GROUPS[..1], bucket, start, Twists::default())
            .bucket("other", &GROUPS[1..], bucket, start, Twists::default())
    };
    let calls: Vec<Call> = (0..calls)
        .map(|i| {
            let group = if i < alone { 0 } else { i % 2 };
            let replica = match (split, group) {
                (false, _) => i % 3,
                (true, 0) => 0,
                (true, _) => 1 + (i / 2) % 2,
            };
            Call {
                group: GROUPS[group].to_owned(),
                priority: Priority::ALL[(i / 2) % 3],
                replica,
            }
        })
        .collect();
    let outcome = drive_mix(&replicas, Arc::new(close), calls, 64).await;
    (outcome.buckets, replicas)
}
