//! From what a phase recorded to the figures printed per bucket: accepted rate ÷ limit per
//! full backlog window, 429s, drain time ÷ ideal, waits per priority, caller errors, and
//! Redis commands per upstream call.

use std::collections::BTreeMap;

use super::drive::{CallRecord, Outcome};
use super::ops::{Group, Priority};
use super::phase::{Learned, Mode, Phase};
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
    /// Windows in which this phase's clients got 429s, and how many.
    pub throttled_windows: Vec<(u64, u64)>,
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
    pub learned: Result<Vec<Learned>, String>,
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

    /// Script calls made only to get room, per upstream call (the tap's; see `Sent::asks`).
    pub fn asks_per_call(&self) -> Option<f64> {
        let asks = self.redis.sent.as_ref()?.asks;
        (self.upstream > 0).then(|| asks as f64 / self.upstream as f64)
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
            throttled_windows: throttled
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(s, n)| (*s, *n))
                .collect(),
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
mod tests;
