//! Window accounting from emulator statistics: full windows, limits, attribution.

use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::bench::clock::EmuClock;
use crate::bench::direct::OtherLog;
use crate::bench::redis_stats::Sent;
use crate::bench::scenario::{LimitChange, OtherClient};
use crate::emulator::{BucketStats, SecondStats, Stats};

/// Emulator time zero, and a clock that knows it.
fn clock() -> (Instant, EmuClock) {
    let zero = Instant::now();
    let spawned = zero - Duration::from_millis(40);
    let probe = zero + Duration::from_secs(2);
    let clock = EmuClock::from_probe(spawned, probe, probe, Duration::from_secs(1));
    (zero, clock)
}

fn at(zero: Instant, secs: f64) -> Instant {
    zero + Duration::from_secs_f64(secs)
}

fn record(zero: Instant, priority: Priority, from: f64, to: f64, ok: bool) -> CallRecord {
    CallRecord {
        group: Group::LeadRead,
        priority,
        issued: at(zero, from),
        done: at(zero, to),
        outcome: if ok {
            Outcome::Ok
        } else {
            Outcome::Failed("Unavailable".to_owned())
        },
    }
}

fn lead_read_stats(seconds: &[(u64, u64, u64)], hidden: u64) -> Stats {
    let per_second = seconds
        .iter()
        .map(|(s, accepted, throttled)| {
            let counts = SecondStats {
                accepted: *accepted,
                throttled: *throttled,
            };
            (*s, counts)
        })
        .collect();
    let bucket = BucketStats {
        accepted: seconds.iter().map(|s| s.1).sum(),
        throttled: seconds.iter().map(|s| s.2).sum(),
        throttled_hidden: hidden,
        per_second,
    };
    Stats {
        buckets: [("lead_read".to_owned(), bucket)].into(),
    }
}

fn scenario(name: &str) -> Scenario {
    let mut s = Scenario::build(name, 1, 10).unwrap();
    s.groups = vec![Group::LeadRead];
    s.limits = [("lead_read", 40)].into();
    s.hidden.clear();
    s.change = None;
    s.other = None;
    s
}

fn phase(zero: Instant, clock: EmuClock, records: Vec<CallRecord>, emulator: Stats) -> Phase {
    Phase {
        mode: Mode::Gateway,
        clock,
        t0: at(zero, 2.5),
        records,
        emulator,
        other: None,
        change_at: None,
        redis: RedisCounts {
            executed: [("evalsha".to_owned(), 202), ("time".to_owned(), 202)].into(),
            sent: Some(Sent {
                by_clients: [("evalsha".to_owned(), 202), ("script".to_owned(), 3)].into(),
                by_scripts: [("time".to_owned(), 202)].into(),
                asks: 30,
            }),
        },
        queue_waits: vec![
            ("lead.read".to_owned(), "high".to_owned(), 4.0),
            ("lead.read".to_owned(), "high".to_owned(), 30.0),
            ("search".to_owned(), "high".to_owned(), 90.0),
            ("lead.read".to_owned(), "urgent".to_owned(), 1.0),
        ],
        learned: Err("Unimplemented".to_owned()),
    }
}

#[test]
fn full_windows_of_the_backlog_against_the_limit() {
    let (zero, clock) = clock();
    // 100 low calls drained by 5.4 s, one high call of 10 ms, one failure.
    let mut records: Vec<CallRecord> = (0..100)
        .map(|i| {
            record(
                zero,
                Priority::Low,
                2.5,
                2.5 + 2.9 * f64::from(i + 1) / 100.0,
                true,
            )
        })
        .collect();
    records.push(record(zero, Priority::High, 3.0, 3.01, true));
    records.push(record(zero, Priority::Normal, 3.0, 3.2, false));
    let stats = lead_read_stats(&[(2, 20, 0), (3, 40, 1), (4, 38, 0), (5, 2, 0)], 0);
    let f = compute(&scenario("cold-start"), &phase(zero, clock, records, stats));
    let b = &f.buckets[0];
    assert_eq!(b.calls, 102);
    // Windows 3 and 4 are the full ones inside [2.5, 5.4].
    let rate = b.rate.clone().unwrap();
    assert_eq!((rate.windows, rate.min), (2, 0.95));
    assert_eq!(rate.accepted, [40, 38]);
    assert!((rate.mean - 0.975).abs() < 1e-9);
    assert_eq!(b.throttled, 1);
    assert!((b.drain.unwrap() - 2.9).abs() < 1e-6);
    // 101 successful calls at 40 per window.
    assert!((b.ideal.unwrap() - 101.0 / 40.0).abs() < 1e-9);
    assert_eq!(b.requests_per_call, 101.0 / 102.0);
    assert_eq!(b.errors, [("Unavailable".to_owned(), 1)].into());
    assert_eq!(b.token_ms, 25.0);
    let high = b.waits[&Priority::High];
    assert!((high.p99 - 10.0).abs() < 1e-6);
    let queued = b.queue_waits[&Priority::High];
    assert_eq!((queued.p50, queued.p99, queued.count), (4.0, 30.0, 2));
    assert_eq!(b.queue_waits.len(), 1);
    assert_eq!(f.upstream, 101);
    assert_eq!(f.redis_scripts, 202);
    assert_eq!(f.commands_per_call(), Some(205.0 / 101.0));
    assert_eq!(f.asks_per_call(), Some(30.0 / 101.0));
    assert_eq!(f.executed_per_call(), Some(4.0));
}

#[test]
fn a_lowered_limit_leaves_its_window_and_the_next_out() {
    let (zero, clock) = clock();
    let records = vec![record(zero, Priority::Low, 2.5, 8.5, true)];
    let stats = lead_read_stats(
        &[
            (3, 40, 0),
            (4, 30, 2),
            (5, 5, 1),
            (6, 19, 0),
            (7, 20, 0),
            (8, 1, 0),
        ],
        0,
    );
    let mut s = scenario("limit-lowered");
    s.change = Some(LimitChange {
        bucket: "lead_read",
        to: 20,
        at: 2.0,
    });
    let mut p = phase(zero, clock, records, stats);
    p.change_at = Some(at(zero, 4.25));
    let f = compute(&s, &p);
    let b = &f.buckets[0];
    // Windows 3 (at 40), 6 and 7 (at 20) count; 4 and 5 do not.
    let rate = b.rate.clone().unwrap();
    assert_eq!((rate.windows, rate.min), (3, 0.95));
    assert_eq!(f.event_window, Some(4));
    let around = b.around.unwrap();
    assert_eq!(
        (around.before, around.at, around.next, around.after),
        (0, 2, 1, 0)
    );
    assert_eq!(b.limit_label, "40→20");
}

#[test]
fn the_other_clients_requests_are_not_ours() {
    let (zero, clock) = clock();
    let records = vec![record(zero, Priority::Low, 2.5, 6.5, true)];
    let stats = lead_read_stats(&[(3, 40, 1), (4, 40, 3), (5, 40, 0)], 0);
    let mut s = scenario("other-client");
    s.other = Some(OtherClient {
        group: Group::LeadRead,
        per_window: 4,
        from: 1.0,
        windows: 1,
    });
    let mut p = phase(zero, clock, records, stats);
    // Four requests in window 4, the last two refused.
    let sent = [4.1, 4.3, 4.6, 4.85].map(|t| at(zero, t));
    p.other = Some(OtherLog {
        sent: vec![
            (sent[0], false),
            (sent[1], false),
            (sent[2], true),
            (sent[3], true),
        ],
    });
    let f = compute(&s, &p);
    let b = &f.buckets[0];
    assert_eq!(f.other, Some((4, 2)));
    assert_eq!(f.event_window, Some(4));
    assert_eq!(b.throttled, 2);
    let around = b.around.unwrap();
    assert_eq!(
        (around.before, around.at, around.next, around.after),
        (1, 1, 0, 0)
    );
    assert_eq!(f.upstream, 124 - 4);
    // One call at 40 per window (window 2 has no other client) takes 1/40 s.
    assert!((b.ideal.unwrap() - 1.0 / 40.0).abs() < 1e-9);
}
