//! The limiter's behaviour under a paused clock: learning, reconciliation, pauses, priority
//! across replicas sharing state, fairness, deadlines, cancellation, overflow, probing.

mod limiter_support;

use std::sync::Arc;
use std::time::Duration;

use close_gateway::close::ratelimit::RateLimitInfo;
use close_gateway::limiter::{
    AcquireRequest, LimitSource, Limiter, LimiterConfig, LimiterError, MemoryState, Permit,
    Priority,
};
use tokio::time::Instant;

const GROUP: &str = "lead.read";

fn config() -> LimiterConfig {
    LimiterConfig {
        replica_id: "r".into(),
        ..LimiterConfig::default()
    }
}

fn replicas(n: usize) -> Vec<Limiter> {
    limiter_support::mix::replicas(&Arc::new(MemoryState::new()), n)
}

fn req(priority: Priority, caller: &str) -> AcquireRequest {
    AcquireRequest {
        group: GROUP.into(),
        priority,
        caller: caller.into(),
        deadline: None,
    }
}

fn header(limit: u64, remaining: u64, reset: Duration) -> RateLimitInfo {
    RateLimitInfo {
        limit: Some(limit),
        remaining: Some(remaining),
        reset: Some(reset),
        raw_header: Some(format!(
            "ratelimit: limit={limit}, remaining={remaining}, reset={}",
            reset.as_secs_f64()
        )),
        ..RateLimitInfo::default()
    }
}

/// Learns `limit` per second with the window ending one second from now.
async fn learn(limiter: &Limiter, limit: u64) {
    let probe = limiter
        .acquire(req(Priority::High, "setup"))
        .await
        .expect("probe");
    limiter
        .observe(
            probe,
            200,
            &header(limit, limit - 1, Duration::from_secs(1)),
        )
        .await;
}

fn spawn_acquire(
    limiter: &Limiter,
    r: AcquireRequest,
) -> tokio::task::JoinHandle<(Result<Permit, LimiterError>, Instant)> {
    let limiter = limiter.clone();
    tokio::spawn(async move {
        let result = limiter.acquire(r).await;
        (result, Instant::now())
    })
}

/// Lets every task run until all wait on the (paused) clock.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

/// Teaches `limiter` one call per 1 s window, with the probe's call using this window's.
async fn one_per_window_used(limiter: &Limiter) {
    let probe = limiter
        .acquire(req(Priority::High, "setup"))
        .await
        .expect("probe");
    limiter
        .observe(probe, 200, &header(1, 0, Duration::from_secs(1)))
        .await;
}

#[tokio::test(start_paused = true)]
async fn learns_the_limit_from_the_first_header() {
    let limiter = Limiter::in_process(config());
    let before = limiter.snapshot();
    let lead = before
        .iter()
        .find(|s| s.group == GROUP)
        .expect("default group");
    assert_eq!((lead.limit, lead.source), (20, LimitSource::Default));

    learn(&limiter, 40).await;
    let snap = limiter.snapshot();
    let lead = snap.iter().find(|s| s.group == GROUP).expect("group");
    assert_eq!(lead.limit, 40);
    assert_eq!(lead.window, Duration::from_secs(1));
    assert!(matches!(lead.source, LimitSource::Learned { .. }));
    // 40 - 1 probe - margin 0 (2 % of 40 rounds down).
    assert_eq!(lead.estimated_remaining, 39);
    assert_eq!(
        lead.last_header.as_deref(),
        Some("ratelimit: limit=40, remaining=39, reset=1")
    );

    // A changed limit replaces the old one.
    let permit = limiter
        .acquire(req(Priority::High, "a"))
        .await
        .expect("permit");
    limiter
        .observe(permit, 200, &header(10, 5, Duration::from_millis(900)))
        .await;
    let snap = limiter.snapshot();
    let lead = snap.iter().find(|s| s.group == GROUP).expect("group");
    assert_eq!(lead.limit, 10);
}

#[tokio::test(start_paused = true)]
async fn only_one_call_in_flight_across_replicas_until_the_limit_is_known() {
    let r = replicas(2);
    let probe = r[0]
        .acquire(req(Priority::Normal, "a"))
        .await
        .expect("probe");
    let waiting = spawn_acquire(&r[1], req(Priority::High, "b"));
    let second = spawn_acquire(&r[0], req(Priority::Normal, "a"));
    tokio::time::sleep(Duration::from_millis(5_001)).await;
    assert!(!waiting.is_finished());
    assert!(!second.is_finished());
    let answered = answer_held_probe(&r[0], probe).await;
    // A `high` call on the other replica looks again every fifth of `probe_poll` (5 ms):
    // at 25 ms, a cold start's `high` call waited up to 2.9 token intervals at 68 per
    // second.
    for handle in [waiting, second] {
        looked_within_a_fifth_of_probe_poll(handle, answered).await;
    }
}

/// Answers a probe held 5 s (its round trip is 5 s too) with a first window long enough
/// that its unverifiable tail (two round trips, a quarter window at most) is not where the
/// calls waiting for the probe look; returns when.
async fn answer_held_probe(limiter: &Limiter, probe: Permit) -> Instant {
    let answered = Instant::now();
    limiter
        .observe(probe, 200, &header(20, 19, Duration::from_millis(900)))
        .await;
    answered
}

async fn looked_within_a_fifth_of_probe_poll(
    handle: tokio::task::JoinHandle<(Result<Permit, LimiterError>, Instant)>,
    answered: Instant,
) {
    let (permit, at) = handle.await.expect("task");
    permit.expect("permit once the limit is known");
    assert!(
        at - answered <= Duration::from_millis(5),
        "{:?}",
        at - answered
    );
}

/// A `high` call that comes while a `low` call of its replica waits for another replica's
/// probe looks within a fifth of `probe_poll` too, not at the `low` call's next look.
#[tokio::test(start_paused = true)]
async fn a_high_call_coming_during_a_probe_looks_as_often_as_one_waiting() {
    let r = replicas(2);
    let probe = r[0]
        .acquire(req(Priority::Normal, "a"))
        .await
        .expect("probe");
    let low = spawn_acquire(&r[1], req(Priority::Low, "b"));
    tokio::time::sleep(Duration::from_millis(5_001)).await;
    let high = spawn_acquire(&r[1], req(Priority::High, "c"));
    tokio::time::sleep(Duration::from_millis(1)).await;
    let answered = answer_held_probe(&r[0], probe).await;
    looked_within_a_fifth_of_probe_poll(high, answered).await;
    low.await.expect("task").0.expect("low permit");
}

#[tokio::test(start_paused = true)]
async fn a_dropped_probe_frees_the_group_for_the_next_call() {
    let r = replicas(2);
    let probe = r[0]
        .acquire(req(Priority::Normal, "a"))
        .await
        .expect("probe");
    let waiting = spawn_acquire(&r[1], req(Priority::Normal, "b"));
    settle().await;
    drop(probe);
    let (permit, _) = waiting.await.expect("task");
    assert!(permit.is_ok());
}

#[tokio::test(start_paused = true)]
async fn reconciles_with_close_remaining() {
    let limiter = Limiter::in_process(config());
    learn(&limiter, 100).await;
    let permit = limiter
        .acquire(req(Priority::High, "a"))
        .await
        .expect("permit");
    // Another client used most of the window: Close says 10 left.
    limiter
        .observe(permit, 200, &header(100, 10, Duration::from_millis(800)))
        .await;
    let snap = limiter.snapshot();
    let lead = snap.iter().find(|s| s.group == GROUP).expect("group");
    // 10 - margin 2, of which half: the other client, unknown before this window, books
    // from the same room at the same moments, and its share is not known yet.
    assert_eq!(lead.estimated_remaining, 4);
    let start = Instant::now();
    let mut in_window = 0;
    for _ in 0..20 {
        let permit = limiter
            .acquire(req(Priority::High, "a"))
            .await
            .expect("permit");
        if Instant::now() - start < Duration::from_millis(800) {
            in_window += 1;
        }
        drop(permit);
    }
    assert_eq!(in_window, 4);
}

#[tokio::test(start_paused = true)]
async fn a_429_pauses_every_replica_until_close_reset() {
    let r = replicas(2);
    learn(&r[0], 20).await;
    let permit = r[0]
        .acquire(req(Priority::High, "a"))
        .await
        .expect("permit");
    let mut throttled = header(20, 0, Duration::from_secs(2));
    throttled.retry_after = Some(Duration::from_secs(3));
    let at = Instant::now();
    r[0].observe(permit, 429, &throttled).await;
    let until = at + Duration::from_secs(2);
    // Shown until the reset (the paused clock stands still; the wall clock does not).
    let before = std::time::SystemTime::now();
    let snap = r[0].snapshot();
    let after = std::time::SystemTime::now();
    let paused = snap.iter().find(|s| s.group == GROUP).expect("group");
    let shown = paused.paused_until.expect("paused");
    let two = Duration::from_secs(2);
    assert!(before + two <= shown && shown <= after + two, "{shown:?}");

    // The replica that saw the 429 refuses a deadline before the reset at once.
    let soon = Some(Instant::now() + Duration::from_secs(1));
    let refused = r[0]
        .acquire(AcquireRequest {
            deadline: soon,
            ..req(Priority::High, "a")
        })
        .await
        .expect_err("paused");
    assert_eq!(
        refused,
        LimiterError::Paused {
            group: GROUP.into(),
            retry_after: Duration::from_secs(2)
        }
    );
    // The other replica learns the pause from the shared state.
    let refused = r[1]
        .acquire(AcquireRequest {
            deadline: soon,
            ..req(Priority::High, "b")
        })
        .await
        .expect_err("paused");
    assert!(
        matches!(refused, LimiterError::Paused { .. }),
        "{refused:?}"
    );
    let (permit, granted) = spawn_acquire(&r[1], req(Priority::High, "b"))
        .await
        .expect("task");
    permit.expect("permit after the pause");
    assert!(granted >= until);
    assert!(granted - until <= Duration::from_millis(1));
    let snap = r[1].snapshot();
    assert_eq!(
        snap.iter().find(|s| s.group == GROUP).map(|s| s.throttled),
        Some(1)
    );
}

#[tokio::test(start_paused = true)]
async fn high_on_one_replica_gets_the_room_before_low_on_another() {
    let r = replicas(2);
    one_per_window_used(&r[0]).await;
    let window = Instant::now() + Duration::from_secs(1);
    let low = spawn_acquire(&r[0], req(Priority::Low, "bulk"));
    settle().await;
    let high = spawn_acquire(&r[1], req(Priority::High, "pager"));
    let (high, high_at) = high.await.expect("task");
    high.expect("high permit");
    let (low, low_at) = low.await.expect("task");
    low.expect("low permit");
    assert!(high_at >= window && high_at < window + Duration::from_millis(10));
    assert!(low_at >= window + Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn high_overtakes_a_low_backlog_of_another_replica() {
    let r = replicas(2);
    learn(&r[0], 100).await;
    let mut lows = Vec::new();
    for i in 0..300 {
        lows.push(spawn_acquire(
            &r[0],
            req(Priority::Low, &format!("bulk{}", i % 4)),
        ));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    let permit = r[1]
        .acquire(req(Priority::High, "pager"))
        .await
        .expect("high");
    // A token interval is 10 ms at 100 per second.
    assert!(Instant::now() - asked <= Duration::from_millis(20));
    assert!(permit.waited <= Duration::from_millis(20));
    for low in lows {
        low.abort();
    }
}

#[tokio::test(start_paused = true)]
async fn callers_of_one_priority_take_turns() {
    let limiter = Limiter::in_process(config());
    learn(&limiter, 10).await;
    let mut handles = Vec::new();
    for i in 0..12 {
        handles.push((
            "bulk",
            i,
            spawn_acquire(&limiter, req(Priority::Normal, "bulk")),
        ));
    }
    for i in 0..3 {
        handles.push((
            "small",
            i,
            spawn_acquire(&limiter, req(Priority::Normal, "small")),
        ));
    }
    let mut order = Vec::new();
    for (caller, i, handle) in handles {
        let (permit, at) = handle.await.expect("task");
        permit.expect("permit");
        order.push((at, caller, i));
    }
    order.sort();
    let callers: Vec<&str> = order.iter().map(|(_, c, _)| *c).take(6).collect();
    assert_eq!(callers, ["bulk", "small", "bulk", "small", "bulk", "small"]);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_that_cannot_be_met_fails_at_once() {
    let limiter = Limiter::in_process(config());
    learn(&limiter, 10).await;
    let mut backlog = Vec::new();
    for _ in 0..30 {
        backlog.push(spawn_acquire(&limiter, req(Priority::Normal, "bulk")));
    }
    settle().await;
    let asked = Instant::now();
    let err = limiter
        .acquire(AcquireRequest {
            deadline: Some(asked + Duration::from_secs(1)),
            ..req(Priority::Normal, "bulk")
        })
        .await
        .expect_err("unreachable");
    assert_eq!(Instant::now(), asked);
    let LimiterError::DeadlineUnreachable { retry_after, .. } = err else {
        panic!("{err:?}")
    };
    assert!(retry_after > Duration::from_secs(2), "{retry_after:?}");
    // A high call with the same deadline goes ahead of the backlog.
    let high = limiter
        .acquire(AcquireRequest {
            deadline: Some(asked + Duration::from_secs(1)),
            ..req(Priority::High, "pager")
        })
        .await;
    assert!(high.is_ok());
    for handle in backlog {
        handle.abort();
    }
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_call_leaves_the_line_and_uses_no_room() {
    let limiter = Limiter::in_process(config());
    one_per_window_used(&limiter).await;
    let next_window = Instant::now() + Duration::from_secs(1);
    let cancelled = tokio::time::timeout(
        Duration::from_millis(500),
        limiter.acquire(req(Priority::High, "impatient")),
    )
    .await;
    assert!(cancelled.is_err());
    let snap = limiter.snapshot();
    assert_eq!(
        snap.iter()
            .find(|s| s.group == GROUP)
            .map(|s| s.queue_local),
        Some([0, 0, 0])
    );
    let (permit, at) = spawn_acquire(&limiter, req(Priority::High, "patient"))
        .await
        .expect("task");
    permit.expect("the cancelled call's room");
    assert!(at >= next_window && at < next_window + Duration::from_millis(10));
}

/// Each replica reports its waiting calls to the shared state: a replica's snapshot shows
/// its own line and, as of its last script call, every replica's.
#[tokio::test(start_paused = true)]
async fn a_snapshot_counts_the_calls_waiting_on_every_replica() {
    let r = replicas(2);
    one_per_window_used(&r[0]).await;
    let _a = spawn_acquire(&r[0], req(Priority::Normal, "a"));
    let _b = spawn_acquire(&r[0], req(Priority::Normal, "a"));
    let _c = spawn_acquire(&r[0], req(Priority::Low, "b"));
    settle().await;
    let _d = spawn_acquire(&r[1], req(Priority::High, "c"));
    settle().await;
    let queues = |limiter: &Limiter| {
        let snap = limiter.snapshot();
        let group = snap.into_iter().find(|s| s.group == GROUP).expect("group");
        (group.queue_local, group.queue_all)
    };
    assert_eq!(queues(&r[0]).0, [0, 2, 1]);
    assert_eq!(queues(&r[1]), ([1, 0, 0], Some([1, 2, 1])));
}

#[tokio::test(start_paused = true)]
async fn an_overflowing_queue_rejects_at_once() {
    let limiter = Limiter::in_process(LimiterConfig {
        queue_bound: 2,
        ..config()
    });
    let _probe = limiter
        .acquire(req(Priority::High, "a"))
        .await
        .expect("probe");
    let _a = spawn_acquire(&limiter, req(Priority::Normal, "a"));
    let _b = spawn_acquire(&limiter, req(Priority::Normal, "a"));
    settle().await;
    let err = limiter
        .acquire(req(Priority::High, "a"))
        .await
        .expect_err("full");
    assert_eq!(
        err,
        LimiterError::QueueFull {
            group: GROUP.into()
        }
    );
    let snap = limiter.snapshot();
    assert_eq!(
        snap.iter()
            .find(|s| s.group == GROUP)
            .map(|s| s.queue_local),
        Some([0, 2, 0])
    );
}

#[test]
fn priorities_parse_from_metadata() {
    assert_eq!("HIGH".parse(), Ok(Priority::High));
    assert_eq!(" low ".parse(), Ok(Priority::Low));
    assert_eq!("Normal".parse(), Ok(Priority::Normal));
    assert!("urgent".parse::<Priority>().is_err());
    assert_eq!(Priority::default(), Priority::Normal);
}

#[tokio::test(start_paused = true)]
async fn a_key_pool_spreads_calls_over_its_keys() {
    let limiter = Limiter::in_process(config().with_api_keys(&["key-one", "key-two"]));
    // One call for the whole group before any header, as with one key; then the other key
    // probes its own.
    let first = limiter
        .acquire(req(Priority::Normal, "a"))
        .await
        .expect("probe");
    let waiting = spawn_acquire(&limiter, req(Priority::Normal, "a"));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        !waiting.is_finished(),
        "a second call went before any header"
    );
    assert_eq!(first.key_index, 0);
    limiter
        .observe(first, 200, &header(5, 4, Duration::from_secs(1)))
        .await;
    let (second, _) = waiting.await.expect("task");
    let second = second.expect("probe of the other key");
    assert_eq!(second.key_index, 1);
    limiter
        .observe(second, 200, &header(5, 4, Duration::from_secs(1)))
        .await;
    // Keys: 4 + 4 left; the organization (3 x 5 = 15) caps nothing here.
    let mut per_key = [0; 2];
    let start = Instant::now();
    while Instant::now() - start < Duration::from_millis(990) {
        let permit = limiter
            .acquire(req(Priority::High, "a"))
            .await
            .expect("permit");
        per_key[permit.key_index] += 1;
        if per_key.iter().sum::<usize>() == 8 {
            break;
        }
    }
    assert_eq!(per_key, [4, 4]);
    let snap = limiter.snapshot();
    assert_eq!(
        snap.iter().find(|s| s.group == GROUP).map(|s| s.limit),
        Some(10)
    );
}
