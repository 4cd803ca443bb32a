//! The targets of the shared-limiter issue, checked against a scenario's gateway phase.
//!
//! Every scenario: no caller error, at most two Redis commands per upstream call, and the
//! scenario's own 429 target. The rate (≥ 95 % of the limit in every full backlog window)
//! and drain (≤ 1.05 × ideal) targets in every scenario but `hidden-limits`, whose injected
//! 429s pause a group by design; with a lowered limit, the window of the change and the
//! next are left out of the rate. The `high` wait (p99 ≤ 2 token intervals while `low`
//! saturates) is a steady-state target: checked where no 429 is allowed (`cold-start`,
//! `shared-bucket`, `shared-split`), shown elsewhere, where a permitted 429 pauses the group
//! for everyone until Close's reset.

use super::figures::{BucketFigures, PhaseFigures};
use super::ops::Priority;
use super::scenario::Scenario;

/// One target's outcome. `pass` is `None` for a figure shown for information.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub scenario: &'static str,
    pub target: String,
    pub measured: String,
    pub pass: Option<bool>,
}

pub fn evaluate(scenario: &Scenario, f: &PhaseFigures) -> Vec<Verdict> {
    let name = scenario.name;
    let mut out = Vec::new();
    let mut push = |target: &str, measured: String, pass: Option<bool>| {
        out.push(Verdict {
            scenario: name,
            target: target.to_owned(),
            measured,
            pass,
        });
    };
    match name {
        "limit-lowered" => {
            let around = scenario
                .change
                .as_ref()
                .and_then(|c| f.buckets.iter().find(|b| b.bucket == c.bucket))
                .and_then(|b| b.around)
                .unwrap_or_default();
            let elsewhere: u64 = f
                .buckets
                .iter()
                .filter(|b| {
                    scenario
                        .change
                        .as_ref()
                        .is_none_or(|c| c.bucket != b.bucket)
                })
                .map(|b| b.throttled)
                .sum();
            let stray = around.before + around.after + elsewhere;
            push(
                "429s only in the change window and the next",
                format!("{} then {}, {stray} elsewhere", around.at, around.next),
                Some(stray == 0),
            );
        }
        "hidden-limits" => {
            let hidden: u64 = f.buckets.iter().map(|b| b.throttled_hidden).sum();
            let all = f.throttled();
            push(
                "only the injected 429s",
                format!("{all} 429s, {hidden} injected"),
                Some(all == hidden),
            );
        }
        "other-client" => {
            let around = scenario
                .other
                .as_ref()
                .and_then(|o| f.buckets.iter().find(|b| b.bucket == o.group.bucket()))
                .and_then(|b| b.around)
                .unwrap_or_default();
            let elsewhere: u64 = f
                .buckets
                .iter()
                .filter(|b| {
                    scenario
                        .other
                        .as_ref()
                        .is_none_or(|o| o.group.bucket() != b.bucket)
                })
                .map(|b| b.throttled)
                .sum();
            let stray = around.before + around.next + around.after + elsewhere;
            push(
                "429s only in the window the other client appears",
                format!("{} there, {stray} elsewhere", around.at),
                Some(stray == 0),
            );
        }
        _ => {
            let n = f.throttled();
            push("zero 429s", n.to_string(), Some(n == 0));
        }
    }
    let errors = f.errors();
    let calls: u64 = f.buckets.iter().map(|b| b.calls).sum();
    push(
        "no caller error",
        format!("{errors} of {calls} calls failed"),
        Some(errors == 0),
    );
    if name != "hidden-limits" {
        let rate = worst(&f.buckets, |b| b.rate.as_ref().map(|r| r.min), f64::min);
        push(
            "rate >= 95% of limit in every full backlog window",
            rate.map_or("no full window".to_owned(), |(b, v)| {
                format!("min {v:.3} ({b})")
            }),
            Some(rate.is_some_and(|(_, v)| v >= 0.95)),
        );
        let drain = worst(&f.buckets, BucketFigures::drain_ratio, f64::max);
        push(
            "drain time <= 1.05 x ideal",
            drain.map_or("-".to_owned(), |(b, v)| format!("max {v:.3} ({b})")),
            Some(drain.is_some_and(|(_, v)| v <= 1.05)),
        );
        // The queue wait the replicas logged when they did; the caller's latency (queue
        // wait plus the call itself) otherwise.
        let intervals =
            |w: Option<&super::figures::Waits>, b: &BucketFigures| w.map(|w| w.p99 / b.token_ms);
        let queued = worst(
            &f.buckets,
            |b| intervals(b.queue_waits.get(&Priority::High), b),
            f64::max,
        );
        let caller = worst(
            &f.buckets,
            |b| intervals(b.waits.get(&Priority::High), b),
            f64::max,
        );
        let (measured, pass) = match (queued, caller) {
            (Some((b, q)), Some((_, c))) => (format!("queue {q:.2} ({b}), call {c:.2}"), q <= 2.0),
            (Some((b, q)), None) => (format!("queue {q:.2} ({b})"), q <= 2.0),
            (None, Some((b, c))) => (format!("call {c:.2} ({b})"), c <= 2.0),
            (None, None) => ("-".to_owned(), false),
        };
        let steady = matches!(name, "cold-start" | "shared-bucket" | "shared-split");
        push(
            "high p99 wait <= 2 token intervals under low bulk",
            measured,
            steady.then_some(pass),
        );
    }
    let per_call = f.commands_per_call();
    push(
        "<= 2 Redis commands per upstream call",
        per_call.map_or("not counted (--no-redis-tap)".to_owned(), |v| {
            format!("{v:.2}")
        }),
        per_call.map(|v| v <= 2.0),
    );
    // Every call's room comes from one script call (an ask, or an answer of Close that
    // carried one); asks that found no room and asked again count too.
    let asks = f.asks_per_call();
    let scripts = f.scripts_per_call().unwrap_or_default();
    push(
        "one Redis round trip before a call is sent",
        asks.map_or("not counted (--no-redis-tap)".to_owned(), |v| {
            format!("{v:.2} asks per call ({scripts:.2} scripts)")
        }),
        asks.map(|v| v <= 1.0),
    );
    out
}

/// The worst value of `figure` over the buckets that have one, by `pick` (min or max),
/// with the bucket it came from.
fn worst(
    buckets: &[BucketFigures],
    figure: impl Fn(&BucketFigures) -> Option<f64>,
    pick: fn(f64, f64) -> f64,
) -> Option<(&'static str, f64)> {
    let mut best: Option<(&'static str, f64)> = None;
    for b in buckets {
        let Some(v) = figure(b) else {
            continue;
        };
        best = match best {
            Some((name, w)) if pick(v, w) == w => Some((name, w)),
            _ => Some((b.bucket, v)),
        };
    }
    best
}
