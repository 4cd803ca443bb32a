//! The printed report: a compact table per phase of each scenario, then the summary against
//! the targets.

use std::fmt::Write as _;

use super::figures::{BucketFigures, PhaseFigures, Waits};
use super::ops::Priority;
use super::phase::Mode;
use super::scenario::Scenario;
use super::targets::Verdict;

/// The scenario's heading: what it does and its limits.
pub fn scenario_header(scenario: &Scenario, calls: u64) -> String {
    let limits: Vec<String> = scenario
        .buckets()
        .iter()
        .map(|b| format!("{b}={}", scenario.limit_label(b)))
        .collect();
    format!(
        "\n== {}: {}\n   Close's limits per 1 s window (not told to the gateway): {}; {calls} calls\n",
        scenario.name,
        scenario.about,
        limits.join(" ")
    )
}

/// One phase's table and notes.
pub fn phase_table(
    scenario: &Scenario,
    f: &PhaseFigures,
    replicas: usize,
    callers: usize,
) -> String {
    let mut out = String::new();
    let title = match f.mode {
        Mode::Gateway => {
            format!("through the gateway: {replicas} replicas sharing Redis, {callers} callers")
        }
        Mode::Direct => format!(
            "direct, before the gateway: {callers} uncoordinated HTTP clients, retry after 429"
        ),
    };
    let _ = writeln!(out, "  -- {title}");
    let _ = writeln!(
        out,
        "  {:<34} {:>12} {:>6} {:>11} {:>6} {:>8} {:>16} {:>13} {:>13} {:>13}  errors",
        "bucket",
        "limit",
        "calls",
        "rate min/avg",
        "429s",
        "req/call",
        "drain/ideal s",
        "high p50/p99",
        "normal",
        "low",
    );
    for b in &f.buckets {
        let _ = writeln!(out, "  {}", bucket_row(b));
    }
    let _ = writeln!(
        out,
        "  (rate: accepted ÷ limit per full window while the burst drains; waits: call latency at the caller, ms)"
    );
    let _ = writeln!(out, "  accepted per full window while the burst drains:");
    for b in &f.buckets {
        let counts = b.rate.as_ref().map_or(String::from("-"), |r| {
            let counts: Vec<String> = r.accepted.iter().map(u64::to_string).collect();
            counts.join(" ")
        });
        let _ = writeln!(out, "    {:<34} {counts}", b.label);
    }
    let throttled: Vec<String> = f
        .buckets
        .iter()
        .filter(|b| !b.throttled_windows.is_empty())
        .map(|b| {
            let windows: Vec<String> = b
                .throttled_windows
                .iter()
                .map(|(s, n)| format!("{n} in window {s}"))
                .collect();
            format!("{} {}", b.bucket, windows.join(", "))
        })
        .collect();
    if !throttled.is_empty() && f.mode == Mode::Gateway {
        let _ = writeln!(out, "  429s: {}", throttled.join("; "));
    }
    if f.buckets.iter().any(|b| !b.queue_waits.is_empty()) {
        let _ = writeln!(
            out,
            "  queue wait logged by the replicas, p50/p99 ms (high | normal | low):"
        );
        for b in &f.buckets {
            let cell = |p: Priority| match b.queue_waits.get(&p) {
                Some(Waits { p50, p99, .. }) => format!("{}/{}", ms(*p50), ms(*p99)),
                None => "-".to_owned(),
            };
            let _ = writeln!(
                out,
                "    {:<34} {} | {} | {}   (token interval {} ms)",
                b.label,
                cell(Priority::High),
                cell(Priority::Normal),
                cell(Priority::Low),
                ms(b.token_ms)
            );
        }
    }
    notes(&mut out, scenario, f);
    out
}

fn bucket_row(b: &BucketFigures) -> String {
    let rate = match &b.rate {
        Some(r) => format!("{:.2}/{:.2}", r.min, r.mean),
        None => "-".to_owned(),
    };
    let drain = match (b.drain, b.ideal, b.drain_ratio()) {
        (Some(d), Some(i), Some(r)) => format!("{d:.1}/{i:.1}={r:.2}"),
        (Some(d), _, _) => format!("{d:.1}/-"),
        _ => "-".to_owned(),
    };
    let wait = |p: Priority| match b.waits.get(&p) {
        Some(Waits { p50, p99, .. }) => format!("{}/{}", ms(*p50), ms(*p99)),
        None => "-".to_owned(),
    };
    let errors = if b.errors.is_empty() {
        "none".to_owned()
    } else {
        let parts: Vec<String> = b.errors.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        parts.join(" ")
    };
    format!(
        "{:<34} {:>12} {:>6} {:>11} {:>6} {:>8.2} {:>16} {:>13} {:>13} {:>13}  {errors}",
        b.label,
        b.limit_label,
        b.calls,
        rate,
        b.throttled,
        b.requests_per_call,
        drain,
        wait(Priority::High),
        wait(Priority::Normal),
        wait(Priority::Low),
    )
}

fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

fn notes(out: &mut String, scenario: &Scenario, f: &PhaseFigures) {
    if f.mode == Mode::Gateway {
        let per = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}"));
        let list = |m: &std::collections::BTreeMap<String, u64>| {
            let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k} {v}")).collect();
            if parts.is_empty() {
                "none".to_owned()
            } else {
                parts.join(", ")
            }
        };
        let _ = writeln!(
            out,
            "  redis, per upstream call ({} calls): {} commands sent, {} of them scripts; {} executed counting inside scripts",
            f.upstream,
            per(f.commands_per_call()),
            per(f.scripts_per_call()),
            per(f.executed_per_call()),
        );
        match &f.redis.sent {
            Some(sent) => {
                let _ = writeln!(
                    out,
                    "    sent: {}; inside scripts: {}",
                    list(&sent.by_clients),
                    list(&sent.by_scripts)
                );
            }
            None => {
                let _ = writeln!(out, "    executed: {}", list(&f.redis.executed));
            }
        }
        match &f.learned {
            Ok(groups) => {
                // The loaded groups only: the table has dozens.
                let list: Vec<String> = groups
                    .iter()
                    .filter(|l| scenario.groups.iter().any(|o| o.gateway_name() == l.group))
                    .map(|l| {
                        let mut cell =
                            format!("{}={} {}", l.group, l.limit, l.source.to_lowercase());
                        if !l.shared_with.is_empty() {
                            let with = l.shared_with.join(", ");
                            cell += &format!(" (seems to share a bucket with {with})");
                        }
                        if !l.served_in.is_empty() {
                            cell += &format!(" (served in {}'s state)", l.served_in);
                        }
                        cell
                    })
                    .collect();
                if !list.is_empty() {
                    let _ = writeln!(out, "  GetRateLimits (replica 0): {}", list.join(", "));
                }
            }
            Err(why) => {
                let _ = writeln!(out, "  GetRateLimits (replica 0): {why}");
            }
        }
    }
    let changed = scenario.change.as_ref().and_then(|c| {
        let b = f.buckets.iter().find(|b| b.bucket == c.bucket)?;
        Some((c, b.around?))
    });
    if let Some((change, a)) = changed {
        let _ = writeln!(
            out,
            "  {} limit lowered in window {}: 429s before {}, in that window {}, the next {}, later {}",
            change.bucket,
            f.event_window.unwrap_or(0),
            a.before,
            a.at,
            a.next,
            a.after
        );
    }
    if let Some((sent, throttled)) = f.other {
        let ours = scenario
            .other
            .as_ref()
            .and_then(|o| f.buckets.iter().find(|b| b.bucket == o.group.bucket()))
            .and_then(|b| b.around);
        let _ = write!(
            out,
            "  other client: {sent} requests from window {}, {throttled} of them got 429",
            f.event_window.unwrap_or(0)
        );
        if let Some(a) = ours {
            let _ = write!(
                out,
                "; this side's 429s before {}, in its first window {}, the next {}, later {}",
                a.before, a.at, a.next, a.after
            );
        }
        out.push('\n');
    }
    for b in f
        .buckets
        .iter()
        .filter(|b| scenario.hidden.contains_key(b.bucket))
    {
        let _ = writeln!(
            out,
            "  {}: {} 429s, {} of them from the hidden limit",
            b.bucket, b.throttled, b.throttled_hidden
        );
    }
}

/// The final table: every target, measured, pass or fail.
pub fn summary(verdicts: &[Verdict]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n== summary against the targets (gateway phases)");
    let _ = writeln!(
        out,
        "  {:<14} {:<56} {:<30} result",
        "scenario", "target", "measured"
    );
    for v in verdicts {
        let result = match v.pass {
            Some(true) => "pass",
            Some(false) => "FAIL",
            None => "info",
        };
        let _ = writeln!(
            out,
            "  {:<14} {:<56} {:<30} {result}",
            v.scenario, v.target, v.measured
        );
    }
    let passed = verdicts.iter().filter(|v| v.pass == Some(true)).count();
    let failed = verdicts.iter().filter(|v| v.pass == Some(false)).count();
    let _ = writeln!(out, "  {passed} passed, {failed} failed");
    out
}
