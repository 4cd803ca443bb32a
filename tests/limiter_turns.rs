//! `normal` calls waiting on several replicas take turns: three replicas sharing one
//! in-process state (paused clock) each get a third of a backlog at once, and a simulated
//! Close answers them. While every replica has calls waiting, none runs ahead of another by
//! more than a quarter window's worth of calls. Before each ask was held to its share of the horizon, the replica
//! whose answers came back asked first and booked the whole horizon every time; one replica
//! was served for about a window while the others' calls, come as early, waited (121 to 155
//! calls ahead at 69 per second).

mod limiter_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use close_gateway::limiter::{AcquireRequest, MemoryState, Priority};
use limiter_support::Close;
use limiter_support::mix::replicas;
use tokio::time::Instant;

/// The most calls one replica was served ahead of another while all three had calls
/// waiting, and the 429s Close answered.
async fn lead(limit: u64, phase: u64) -> (u64, u64) {
    let state = Arc::new(MemoryState::new());
    let replicas = replicas(&state, 3);
    let start = Instant::now();
    let close = Arc::new(Close {
        limit,
        window: Duration::from_secs(1),
        origin: start - Duration::from_millis(phase),
        twists: Default::default(),
        counts: Mutex::new(BTreeMap::new()),
    });
    let served = Arc::new(Mutex::new(Vec::new()));
    let per_replica = limit as usize * 8 / 3;
    let mut calls = Vec::new();
    for (r, limiter) in replicas.iter().enumerate() {
        for _ in 0..per_replica {
            let (limiter, close, served) = (limiter.clone(), close.clone(), served.clone());
            calls.push(tokio::spawn(async move {
                loop {
                    let req = AcquireRequest {
                        group: "task.write".into(),
                        priority: Priority::Normal,
                        caller: String::new(),
                        deadline: None,
                    };
                    let permit = limiter.acquire(req).await.expect("no deadline, no error");
                    served.lock().expect("served").push((Instant::now(), r));
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    let (status, info) = close.handle(Instant::now());
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    limiter.observe(permit, status, &info).await;
                    if status != 429 {
                        break;
                    }
                }
            }));
        }
    }
    for call in calls {
        call.await.expect("caller");
    }
    let mut served = served.lock().expect("served").clone();
    served.sort();
    let mut counts = [0u64; 3];
    let mut lead = 0;
    for (_, r) in served {
        counts[r] += 1;
        if counts.iter().all(|&n| (n as usize) < per_replica) {
            let most = counts.iter().max().copied().unwrap_or_default();
            let least = counts.iter().min().copied().unwrap_or_default();
            lead = lead.max(most - least);
        }
    }
    let rejected = close
        .counts
        .lock()
        .expect("counts")
        .values()
        .map(|c| c.1)
        .sum();
    (lead, rejected)
}

#[tokio::test(start_paused = true)]
async fn calls_waiting_on_three_replicas_take_turns() {
    for phase in [0, 300, 700] {
        let (lead, rejected) = lead(69, phase).await;
        assert_eq!(rejected, 0, "phase {phase}");
        assert!(
            lead <= 69 / 4,
            "phase {phase}: one replica {lead} calls ahead"
        );
    }
}
