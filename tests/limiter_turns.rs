//! `normal` calls waiting on several replicas take turns: three replicas sharing one
//! in-process state (paused clock) each get a third of a backlog at once, and a simulated
//! Close answers them. While every replica has calls waiting, none runs ahead of another by
//! more than a quarter window's worth of calls. Before each ask was held to its share of the
//! horizon, the replica whose answers came back asked first and booked the whole horizon
//! every time; one replica was served for about a window while the others' calls, come as
//! early, waited (121 to 155 calls ahead at 69 per second). Turns are shared by callers: a
//! small caller on one replica is not held back by one caller's large backlog on another.

mod limiter_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use close_gateway::limiter::{AcquireRequest, MemoryState, Priority};
use limiter_support::Close;
use limiter_support::mix::replicas;
use tokio::time::Instant;

/// Runs `calls` (replica, caller, how many, all at once) at `normal` through three replicas
/// sharing one in-process state, against a simulated Close of `limit` per second whose
/// windows begin `phase` ms before the start; returns who was served in order (replica,
/// caller) and the 429s Close answered.
async fn serve(
    limit: u64,
    phase: u64,
    calls: &[(usize, &str, usize)],
) -> (Vec<(usize, String)>, u64) {
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
    let mut tasks = Vec::new();
    for &(r, caller, n) in calls {
        for _ in 0..n {
            let (limiter, close, served) = (replicas[r].clone(), close.clone(), served.clone());
            let caller = caller.to_owned();
            tasks.push(tokio::spawn(async move {
                loop {
                    let req = AcquireRequest {
                        group: "task.write".into(),
                        priority: Priority::Normal,
                        caller: caller.clone(),
                        deadline: None,
                    };
                    let permit = limiter.acquire(req).await.expect("no deadline, no error");
                    served
                        .lock()
                        .expect("served")
                        .push((Instant::now(), r, caller.clone()));
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
    for task in tasks {
        task.await.expect("caller");
    }
    let mut served = served.lock().expect("served").clone();
    served.sort();
    let rejected = close
        .counts
        .lock()
        .expect("counts")
        .values()
        .map(|c| c.1)
        .sum();
    (
        served.into_iter().map(|(_, r, c)| (r, c)).collect(),
        rejected,
    )
}

/// The most calls one replica was served ahead of another while all three had calls
/// waiting (a third of an 8-window backlog each), and the 429s Close answered.
async fn lead(limit: u64, phase: u64) -> (u64, u64) {
    let per_replica = limit as usize * 8 / 3;
    let calls: Vec<(usize, &str, usize)> = (0..3).map(|r| (r, "", per_replica)).collect();
    let (served, rejected) = serve(limit, phase, &calls).await;
    let mut counts = [0u64; 3];
    let mut lead = 0;
    for (r, _) in served {
        counts[r] += 1;
        if counts.iter().all(|&n| (n as usize) < per_replica) {
            let most = counts.iter().max().copied().unwrap_or_default();
            let least = counts.iter().min().copied().unwrap_or_default();
            lead = lead.max(most - least);
        }
    }
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

/// One caller with eight windows of calls on one replica, another with 20 on another, at
/// 40 per second: the small one is served as one caller of two, not as 20 calls of 340.
/// Shared by calls, its last call was admitted 169th to 191st; by callers, 44th to 97th
/// (replicas still ask as often as their answers come, so the bulk's asks are more).
#[tokio::test(start_paused = true)]
async fn a_small_caller_on_another_replica_is_not_held_to_its_share_of_calls() {
    for phase in [0, 300, 700] {
        let (served, rejected) = serve(40, phase, &[(0, "bulk", 320), (1, "small", 20)]).await;
        assert_eq!(rejected, 0, "phase {phase}");
        let last = served
            .iter()
            .rposition(|(_, c)| c == "small")
            .expect("served");
        assert!(last < 100, "phase {phase}: admission {}", last + 1);
    }
}
