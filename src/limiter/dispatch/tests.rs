//! The local line's ask: what one replica requests from the shared state.

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::local::{Held, Local, Waiter};
use crate::limiter::backend::Origin;
use crate::limiter::policy::{Grant, View};
use crate::limiter::{Limiter, LimiterConfig};

fn wait(local: &mut Local, prio: usize, id: u64, now: Instant) {
    let (tx, _rx) = oneshot::channel();
    let waiter = Waiter {
        group: String::new(),
        prio,
        caller: String::new(),
        deadline: None,
        enqueued: now,
        tx,
    };
    local.queue.push(prio, "", id, waiter);
}

fn hold(local: &mut Local, at: Instant) {
    let grant = Grant {
        key: 0,
        at: 0,
        seq: 1,
        oseq: 0,
        probe: false,
    };
    let origin = Origin::Shared;
    local.held.push_back(Held {
        at,
        grant,
        origin,
        prio: 2,
    });
}

#[tokio::test(start_paused = true)]
async fn asks_at_the_priority_of_the_calls_no_held_slot_covers() {
    let limiter = Limiter::in_process(LimiterConfig::default());
    let now = Instant::now();
    let mut local = Local::default();
    let view = View {
        interval: 10_000,
        ..View::default()
    };
    local.view = Some((view, now, std::time::SystemTime::now()));
    wait(&mut local, 0, 1, now);
    for id in 2..5 {
        wait(&mut local, 2, id, now);
    }
    let ask = local.ask(now, &limiter.inner).expect("an ask");
    assert_eq!((ask.prio, ask.n, ask.demand), (0, 1, [1, 0, 3, 0]));

    // A slot held three token intervals ahead (booked for the bulk) would make the high
    // call wait: it still asks for its own, and the slot covers a low call.
    hold(&mut local, now + Duration::from_millis(30));
    let ask = local.ask(now, &limiter.inner).expect("an ask");
    assert_eq!((ask.prio, ask.n, ask.demand), (0, 1, [1, 0, 2, 0]));

    // The high call's slot is due within a token interval: the low calls need three
    // slots, booked as low so that the pacing horizon and the high reserve apply to them.
    local.held.clear();
    hold(&mut local, now + Duration::from_millis(5));
    let ask = local.ask(now, &limiter.inner).expect("an ask");
    assert_eq!((ask.prio, ask.n, ask.demand), (2, 3, [0, 0, 3, 0]));

    for _ in 0..3 {
        hold(&mut local, now + Duration::from_millis(60));
    }
    assert!(local.ask(now, &limiter.inner).is_none());
}

#[tokio::test(start_paused = true)]
async fn normal_and_low_asks_wait_for_the_next_observation_to_carry_them() {
    let now = Instant::now();
    let mut local = Local::default();
    let interval = Duration::from_millis(10);
    let view = View {
        interval: 10_000,
        ..View::default()
    };
    local.view = Some((view, now, std::time::SystemTime::now()));
    // Nothing due and nothing out: ask now.
    assert_eq!(local.not_before(now, 2, 2), None);
    // A held slot falls due in 30 ms: its call's observation will carry the ask; if it does
    // not come within two token intervals after, ask alone.
    hold(&mut local, now + Duration::from_millis(30));
    let expected = now + Duration::from_millis(30) + 2 * interval;
    assert_eq!(local.not_before(now, 2, 2), Some(expected));
    assert_eq!(local.not_before(now, 1, 2), Some(expected));
    // High calls never wait for that.
    assert_eq!(local.not_before(now, 0, 2), None);
    // A permit out since now: its observation is expected.
    local.held.clear();
    local.sent = 1;
    local.last_sent = Some(now);
    assert_eq!(local.not_before(now, 2, 2), Some(now + 2 * interval));
    assert_eq!(local.not_before(now + 2 * interval, 2, 2), None);
    // The shared state said asking is in vain until later: that holds for high too.
    local.gate[0] = Some(now + Duration::from_secs(1));
    assert_eq!(
        local.not_before(now, 0, 2),
        Some(now + Duration::from_secs(1))
    );
}

/// One ask at a time per line, except that a more urgent call does not wait for the round
/// trip of a less urgent ask: in the benchmark a `high` call behind a `low` ask under way
/// waited two round trips.
#[tokio::test(start_paused = true)]
async fn a_high_call_asks_while_a_low_ask_is_under_way_but_not_twice() {
    let limiter = Limiter::in_process(LimiterConfig::default());
    let now = Instant::now();
    let mut local = Local::default();
    for id in 1..4 {
        wait(&mut local, 2, id, now);
    }
    let low = local.ask(now, &limiter.inner).expect("a low ask");
    assert_eq!(low.prio, 2);
    local.asking[low.prio] += 1;
    assert!(local.ask(now, &limiter.inner).is_none());
    wait(&mut local, 0, 4, now);
    let high = local.ask(now, &limiter.inner).expect("a high ask");
    assert_eq!((high.prio, high.n), (0, 1));
    local.asking[high.prio] += 1;
    assert!(local.ask(now, &limiter.inner).is_none());
    local.end_ask(Some(0));
    local.end_ask(Some(2));
    assert_eq!(local.asking, [0; 3]);
    assert_eq!(local.ask(now, &limiter.inner).map(|a| a.prio), Some(0));
}
