//! From what a phase recorded to the figures printed per bucket: accepted rate ÷ limit per
//! full backlog window, 429s, drain time ÷ ideal, waits per priority, caller errors, and
//! Redis commands per upstream call.

use std::collections::BTreeMap;

use super::drive::{CallRecord, Outcome};
use super::ops::{Group, Priority};
use super::phase::{Mode, Phase};
use super::redis_stats::RedisCounts;
use super::scenario::{Hidden, Scenario, WINDOW};
use super::stats::{self, AroundEvent, RateSummary, Series};

/// Windows the ideal drain may span before it is called unreachable.
const HORIZON: u64 = 100_000;

/// Percentiles of one priority's waits, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Waits {
    pub p50: f64,
    pub p99: f64,
    pub count: usize,
}

#[derive(Debug, Clone)]
pub struct BucketFigures {
    pub bucket: &'static str,
    /// `lead_read`, or `write (lead_write+activity_write)`.
    pub label: String,
    pub limit_label: String,
    pub calls: u64,
    pub rate: Option<RateSummary>,
    /// 429s the emulator answered to this phase's clients (the other client's left out).
    pub throttled: u64,
    /// Of those, refused by a hidden limit.
    pub throttled_hidden: u64,
    /// Requests the emulator saw per call (retries included).
    pub requests_per_call: f64,
    /// Seconds from the burst to the bucket's last answer.
    pub drain: Option<f64>,
    /// Seconds the bucket's calls need at what Close allows.
    pub ideal: Option<f64>,
    /// Latency of successful calls at the caller, per priority.
    pub waits: BTreeMap<Priority, Waits>,
    /// Queue waits the gateway logged, per priority (gateway phase).
    pub queue_waits: BTreeMap<Priority, Waits>,
    pub errors: BTreeMap<String, u64>,
    /// One token at the lowest limit the bucket had, in milliseconds.
    pub token_ms: f64,
    /// Our 429s around the scenario's event (limit change, other client), if it has one here.
    pub around: Option<AroundEvent>,
}

impl BucketFigures {
    pub fn drain_ratio(&self) -> Option<f64> {
        match (self.drain, self.ideal) {
            (Some(d), Some(i)) if i > 0.0 => Some(d / i),
            _ => None,
        }
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

#[derive(Debug, Clone)]
pub struct PhaseFigures {
    pub mode: Mode,
    pub buckets: Vec<BucketFigures>,
    /// Requests the phase's clients sent to the emulator.
    pub upstream: u64,
    /// Commands the replicas sent to Redis (known with the tap only).
    pub redis_sent: Option<u64>,
    /// Of those, script calls (`EVALSHA`, `EVAL`, `FCALL`).
    pub redis_scripts: u64,
    /// Commands Redis executed, inside scripts too.
    pub redis_executed: u64,
    pub redis: RedisCounts,
    /// The other client: requests sent and 429s received.
    pub other: Option<(u64, u64)>,
    /// The emulator window of the limit change or of the other client's first request.
    pub event_window: Option<u64>,
    pub learned: Result<Vec<(String, u64, String)>, String>,
}

impl PhaseFigures {
    pub fn throttled(&self) -> u64 {
        self.buckets.iter().map(|b| b.throttled).sum()
    }

    pub fn errors(&self) -> u64 {
        self.buckets.iter().map(BucketFigures::error_count).sum()
    }

    pub fn commands_per_call(&self) -> Option<f64> {
        let sent = self.redis_sent?;
        (self.upstream > 0).then(|| sent as f64 / self.upstream as f64)
    }

    pub fn executed_per_call(&self) -> Option<f64> {
        (self.upstream > 0).then(|| self.redis_executed as f64 / self.upstream as f64)
    }

    pub fn scripts_per_call(&self) -> Option<f64> {
        (self.upstream > 0).then(|| self.redis_scripts as f64 / self.upstream as f64)
    }
}

/// The figures of a phase.
pub fn compute(scenario: &Scenario, phase: &Phase) -> PhaseFigures {
    let clock = phase.clock;
    let e0 = clock.at(phase.t0);
    let change = scenario
        .change
        .as_ref()
        .zip(phase.change_at)
        .map(|(c, at)| (c, clock.at(at)));
    let other_times: Vec<(f64, bool)> = phase
        .other
        .iter()
        .flat_map(|log| {
            log.sent
                .iter()
                .map(|(t, throttled)| (clock.at(*t), *throttled))
        })
        .collect();
    let other_bucket = scenario.other.as_ref().map(|o| o.group.bucket());
    let other_first = other_times.first().map(|(t, _)| t.max(0.0).floor() as u64);
    let other_429 = stats::bucket_times(other_times.iter().filter(|(_, th)| *th).map(|(t, _)| *t));
    let other_ok = stats::bucket_times(other_times.iter().filter(|(_, th)| !*th).map(|(t, _)| *t));
    let event_window = match (&change, other_first) {
        (Some((_, at)), _) => Some(at.max(0.0).floor() as u64),
        (None, first) => first,
    };
    let mut buckets = Vec::new();
    let mut upstream = 0;
    for bucket in scenario.buckets() {
        let records: Vec<&CallRecord> = phase
            .records
            .iter()
            .filter(|r| r.group.bucket() == bucket)
            .collect();
        let emu = phase
            .emulator
            .buckets
            .get(bucket)
            .cloned()
            .unwrap_or_default();
        let accepted: Series = emu
            .per_second
            .iter()
            .map(|(s, c)| (*s, c.accepted))
            .collect();
        let mut throttled: Series = emu
            .per_second
            .iter()
            .map(|(s, c)| (*s, c.throttled))
            .collect();
        let is_other = other_bucket == Some(bucket);
        let (mut requests, mut throttled_total) = (emu.accepted + emu.throttled, emu.throttled);
        if is_other {
            throttled = stats::subtract(&throttled, &other_429);
            let other_sent = other_times.len() as u64;
            let other_throttled = other_429.values().sum::<u64>();
            requests = requests.saturating_sub(other_sent);
            throttled_total = throttled_total.saturating_sub(other_throttled);
        }
        upstream += requests;
        let announced = scenario.limits.get(bucket).copied().unwrap_or(0) as f64;
        let cap = match scenario.hidden.get(bucket) {
            Some(Hidden::Cap(cap)) => *cap as f64,
            _ => f64::INFINITY,
        };
        // The lowered limit: its window, the fraction of that window before it, the new limit.
        let my_change = change
            .filter(|(c, _)| c.bucket == bucket)
            .map(|(c, at)| (at.max(0.0).floor() as u64, at - at.floor(), c.to as f64));
        let limit_at = |s: u64| -> Option<f64> {
            let limit = match my_change {
                // The change's window and the next are where 429s are allowed: no rate there.
                Some((w, _, _)) if s == w || s == w + 1 => return None,
                Some((w, _, to)) if s > w => to,
                _ => announced,
            };
            Some(limit.min(cap))
        };
        let capacity = |s: u64| -> f64 {
            let limit = match my_change {
                Some((w, before, to)) if s == w => announced * before + to * (1.0 - before),
                Some((w, _, to)) if s > w => to,
                _ => announced,
            };
            let others = if is_other {
                other_ok.get(&s).copied().unwrap_or(0)
            } else {
                0
            };
            (limit.min(cap) - others as f64).max(0.0)
        };
        // The drain is that of the calls that succeeded; failures are reported apart.
        let ok: Vec<&CallRecord> = records
            .iter()
            .copied()
            .filter(|r| r.outcome == Outcome::Ok)
            .collect();
        let burst_end = ok
            .iter()
            .filter(|r| r.priority == Priority::Low)
            .map(|r| r.done)
            .max();
        let last = ok.iter().map(|r| r.done).max();
        let rate = burst_end.and_then(|end| {
            let windows = stats::full_windows(e0, clock.at(end));
            stats::rate_summary(&accepted, windows, limit_at)
        });
        let drain = last.map(|t| clock.at(t) - e0);
        let ideal = stats::ideal_drain(ok.len() as f64, e0, capacity, HORIZON);
        let lowest = [announced, cap, my_change.map_or(announced, |(_, _, to)| to)]
            .into_iter()
            .fold(f64::INFINITY, f64::min);
        let around = match (my_change, is_other, event_window) {
            (Some(_), _, Some(w)) | (None, true, Some(w)) => {
                Some(stats::around_event(&throttled, w))
            }
            _ => None,
        };
        let groups = scenario.groups_of(bucket);
        let label = match groups.as_slice() {
            [one] if one.name() == bucket => bucket.to_owned(),
            many => {
                let names: Vec<&str> = many.iter().map(|g| g.name()).collect();
                format!("{bucket} ({})", names.join("+"))
            }
        };
        buckets.push(BucketFigures {
            bucket,
            label,
            limit_label: scenario.limit_label(bucket),
            calls: records.len() as u64,
            rate,
            throttled: throttled_total,
            throttled_hidden: emu.throttled_hidden,
            requests_per_call: requests as f64 / (records.len().max(1)) as f64,
            drain,
            ideal,
            waits: waits(&records),
            queue_waits: queue_waits(&groups, &phase.queue_waits),
            errors: errors(&records),
            token_ms: WINDOW.as_secs_f64() * 1000.0 / lowest.max(1.0),
            around,
        });
    }
    // Scripts are never run by scripts: their executions are what the replicas sent.
    let redis_scripts = ["evalsha", "eval", "fcall"]
        .iter()
        .filter_map(|c| phase.redis.executed.get(*c))
        .sum();
    PhaseFigures {
        mode: phase.mode,
        buckets,
        upstream,
        redis_sent: phase
            .redis
            .sent
            .as_ref()
            .map(|s| s.by_clients.values().sum()),
        redis_scripts,
        redis_executed: phase.redis.executed.values().sum(),
        redis: phase.redis.clone(),
        other: phase
            .other
            .as_ref()
            .map(|log| (log.sent.len() as u64, log.throttled())),
        event_window,
        learned: phase.learned.clone(),
    }
}

/// Latency percentiles of the successful calls, per priority.
fn waits(records: &[&CallRecord]) -> BTreeMap<Priority, Waits> {
    let mut out = BTreeMap::new();
    for priority in Priority::ALL {
        let ms: Vec<f64> = records
            .iter()
            .filter(|r| r.priority == priority && r.outcome == Outcome::Ok)
            .map(|r| r.latency().as_secs_f64() * 1000.0)
            .collect();
        if let (Some(p50), Some(p99)) = (stats::percentile(&ms, 0.5), stats::percentile(&ms, 0.99))
        {
            out.insert(
                priority,
                Waits {
                    p50,
                    p99,
                    count: ms.len(),
                },
            );
        }
    }
    out
}

/// Percentiles of the queue waits logged for `groups`, per priority.
fn queue_waits(groups: &[Group], logged: &[(String, String, f64)]) -> BTreeMap<Priority, Waits> {
    let mut by_priority: BTreeMap<Priority, Vec<f64>> = BTreeMap::new();
    for (group, priority, ms) in logged {
        if !groups.iter().any(|g| g.gateway_name() == group) {
            continue;
        }
        if let Some(p) = Priority::parse(priority) {
            by_priority.entry(p).or_default().push(*ms);
        }
    }
    by_priority
        .into_iter()
        .filter_map(|(p, ms)| {
            let waits = Waits {
                p50: stats::percentile(&ms, 0.5)?,
                p99: stats::percentile(&ms, 0.99)?,
                count: ms.len(),
            };
            Some((p, waits))
        })
        .collect()
}

/// Failed calls by what their caller saw.
fn errors(records: &[&CallRecord]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for r in records {
        if let Outcome::Failed(label) = &r.outcome {
            *out.entry(label.clone()).or_insert(0) += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
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
        let rate = b.rate.unwrap();
        assert_eq!((rate.windows, rate.min), (2, 0.95));
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
        let rate = b.rate.unwrap();
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
}
