//! A rolling update in the closed-loop simulation: one group, ten windows of backlog, 64
//! workers; replicas 0 and 1 of one version, replica 2 of the next, each version with its
//! own limiter state (as the state's version keeps them apart in Redis) and one registry of
//! windows for both (as in Redis); or, to compare, one registry each (as when the other
//! version's fields cannot be read), or no rollout (all three on one state).

use std::sync::Arc;
use std::time::Duration;

use close_gateway::limiter::{Limiter, LimiterConfig, MemoryState, Priority};
use tokio::time::Instant;

use super::Twists;
use super::sim::{BucketOutcome, Buckets, Call, drive_mix};

pub const GROUP: &str = "task.write";

/// Where replica 2 keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollout {
    /// Its own state, the registry shared.
    OneRegistry,
    /// Its own state and registry.
    RegistriesApart,
    /// The others' state.
    None,
}

pub async fn rollout(limit: u64, phase: u64, how: Rollout) -> BucketOutcome {
    let old = Arc::new(MemoryState::new());
    let new = match how {
        Rollout::OneRegistry => Arc::new(MemoryState::beside(&old)),
        Rollout::RegistriesApart => Arc::new(MemoryState::new()),
        Rollout::None => old.clone(),
    };
    let mut replicas = super::mix::replicas(&old, 2);
    let config = LimiterConfig {
        replica_id: "replica2".to_owned(),
        ..LimiterConfig::default()
    };
    replicas.push(Limiter::with_memory(config, new));
    let start = Instant::now();
    let bucket = (limit, Duration::from_secs(1), Duration::from_millis(phase));
    let close = Buckets::new().bucket("write", &[GROUP], bucket, start, Twists::default());
    let calls: Vec<Call> = (0..limit as usize * 10)
        .map(|i| Call {
            group: GROUP.to_owned(),
            priority: Priority::ALL[(i / 2) % 3],
            replica: i % 3,
        })
        .collect();
    let mut outcome = drive_mix(&replicas, Arc::new(close), calls, 64).await;
    outcome.buckets.remove("write").expect("the bucket")
}
