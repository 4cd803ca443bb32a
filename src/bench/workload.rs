//! The workload of a scenario: per bucket, a `low` burst worth `windows` windows of what
//! Close really allows, issued all at once, plus steady `normal` and `high` streams of a
//! tenth of the limit each while the burst drains; dealt to the callers (the `low` ones get
//! the burst, a few others the streams). The same plan drives the gateway and the direct
//! clients.

use std::time::Duration;

use super::ops::{Group, Priority};
use super::scenario::{Scenario, WINDOW};

/// Share of the announced limit each of the `normal` and `high` streams takes.
const STREAM_SHARE: f64 = 0.1;

/// One call: who makes it, to which group, when (after the burst starts).
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub caller: usize,
    pub group: Group,
    pub priority: Priority,
    pub at: Duration,
    /// Distinct per call, so that write bodies differ.
    pub seq: u64,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub jobs: Vec<Job>,
    pub callers: usize,
}

impl Plan {
    /// Calls per group and priority.
    #[cfg(test)]
    pub fn counts(&self) -> std::collections::BTreeMap<(Group, Priority), u64> {
        let mut out = std::collections::BTreeMap::new();
        for job in &self.jobs {
            *out.entry((job.group, job.priority)).or_insert(0) += 1;
        }
        out
    }

    /// Calls per bucket.
    pub fn bucket_calls(&self, bucket: &str) -> u64 {
        self.jobs
            .iter()
            .filter(|j| j.group.bucket() == bucket)
            .count() as u64
    }
}

/// Which callers make calls of which priority: a sixteenth each for `high` and `normal`
/// (at least one), the rest `low`.
pub fn callers_of(priority: Priority, callers: usize) -> std::ops::Range<usize> {
    let few = (callers / 16).max(1);
    let low = callers.saturating_sub(2 * few).max(1);
    match priority {
        Priority::Low => 0..low,
        Priority::Normal => low..low + few,
        Priority::High => low + few..low + 2 * few,
    }
}

/// Calls Close allows in `bucket` over the first `windows` windows of the burst.
fn capacity_over(scenario: &Scenario, bucket: &str, windows: f64) -> u64 {
    // Capacity is constant over tenths of a window; sum it at their midpoints.
    let steps = (windows * 10.0).round() as u64;
    let total: f64 = (0..steps)
        .map(|i| scenario.capacity_at(bucket, (i as f64 + 0.5) / 10.0) / 10.0)
        .sum();
    total.round() as u64
}

/// Splits `total` over `parts`, the remainder to the first ones.
fn split(total: u64, parts: usize) -> Vec<u64> {
    let parts = parts.max(1) as u64;
    (0..parts)
        .map(|i| total / parts + u64::from(i < total % parts))
        .collect()
}

/// Which callers a group's calls go to: 0, any caller; in a scenario that pins groups to
/// replicas, 1 for the first group of a bucket (callers on replica 0) and 2 for the others
/// (callers on the other replicas).
fn side(scenario: &Scenario, index_in_bucket: usize) -> usize {
    match (scenario.pinned, index_in_bucket) {
        (false, _) => 0,
        (true, 0) => 1,
        (true, _) => 2,
    }
}

/// The callers of `range` on `side`; caller `i` talks to replica `i % replicas`
/// (`drive.rs`). All of them when the side has none.
fn callers_on(range: std::ops::Range<usize>, side: usize, replicas: usize) -> Vec<usize> {
    let all: Vec<usize> = range.clone().collect();
    if side == 0 || replicas < 2 {
        return all;
    }
    let some: Vec<usize> = range
        .filter(|c| (c % replicas == 0) == (side == 1))
        .collect();
    if some.is_empty() { all } else { some }
}

/// The plan of `scenario` for a burst of `windows` windows and `callers` callers (at
/// least three: one per priority) spread over `replicas` replicas.
pub fn plan(scenario: &Scenario, windows: u32, callers: usize, replicas: usize) -> Plan {
    let callers = callers.max(3);
    let span = WINDOW.mul_f64(f64::from(windows));
    let mut bulk: Vec<(Group, u64, usize)> = Vec::new();
    let mut streams: Vec<(Group, u64, usize)> = Vec::new();
    for bucket in scenario.buckets() {
        let groups = scenario.groups_of(bucket);
        let limit = scenario.limits.get(bucket).copied().unwrap_or(0) as f64;
        let per_window = (limit * STREAM_SHARE).round().max(1.0) as u64;
        let burst = split(
            capacity_over(scenario, bucket, f64::from(windows)),
            groups.len(),
        );
        let stream = split(per_window * u64::from(windows), groups.len());
        for (i, g) in groups.iter().enumerate() {
            bulk.push((*g, burst[i], side(scenario, i)));
            streams.push((*g, stream[i], side(scenario, i)));
        }
    }
    let mut jobs = Vec::new();
    let mut seq = 0u64;
    // The burst, groups interleaved so that every low caller has a mix.
    let low = callers_of(Priority::Low, callers);
    let sides = [0, 1, 2].map(|side| callers_on(low.clone(), side, replicas));
    let mut dealt = [0usize; 3];
    let most = bulk.iter().map(|(_, n, _)| *n).max().unwrap_or(0);
    for i in 0..most {
        for (group, n, side) in &bulk {
            if i >= *n {
                continue;
            }
            let who = &sides[*side];
            jobs.push(Job {
                caller: who[dealt[*side] % who.len()],
                group: *group,
                priority: Priority::Low,
                at: Duration::ZERO,
                seq,
            });
            dealt[*side] += 1;
            seq += 1;
        }
    }
    // The streams, evenly spaced, each group at its own phase.
    for priority in [Priority::Normal, Priority::High] {
        let range = callers_of(priority, callers);
        let sides = [0, 1, 2].map(|side| callers_on(range.clone(), side, replicas));
        let mut dealt = [0usize; 3];
        for (g_index, (group, n, side)) in streams.iter().enumerate() {
            let phase = g_index as f64 / streams.len() as f64;
            let who = &sides[*side];
            for i in 0..*n {
                let at = span.mul_f64((i as f64 + phase) / *n as f64);
                jobs.push(Job {
                    caller: who[dealt[*side] % who.len()],
                    group: *group,
                    priority,
                    at,
                    seq,
                });
                dealt[*side] += 1;
                seq += 1;
            }
        }
    }
    Plan { jobs, callers }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::scenario::LimitChange;

    fn scenario(name: &str, limits: &[(&'static str, u64)]) -> Scenario {
        let mut s = Scenario::build(name, 1, 10).unwrap();
        s.limits = limits.iter().copied().collect();
        s.hidden.clear();
        s.change = None;
        s
    }

    #[test]
    fn callers_split_by_priority() {
        assert_eq!(callers_of(Priority::Low, 64), 0..56);
        assert_eq!(callers_of(Priority::Normal, 64), 56..60);
        assert_eq!(callers_of(Priority::High, 64), 60..64);
        assert_eq!(callers_of(Priority::Low, 3), 0..1);
        assert_eq!(callers_of(Priority::High, 3), 2..3);
    }

    #[test]
    fn a_burst_of_ten_windows_and_two_streams() {
        let s = scenario("cold-start", &[("lead_read", 40), ("search", 25)]);
        let s = Scenario {
            groups: vec![Group::LeadRead, Group::Search],
            ..s
        };
        let plan = plan(&s, 10, 64, 3);
        let counts = plan.counts();
        assert_eq!(counts[&(Group::LeadRead, Priority::Low)], 400);
        assert_eq!(counts[&(Group::LeadRead, Priority::Normal)], 40);
        assert_eq!(counts[&(Group::LeadRead, Priority::High)], 40);
        assert_eq!(counts[&(Group::Search, Priority::Low)], 250);
        assert_eq!(counts[&(Group::Search, Priority::High)], 30);
        assert_eq!(plan.bucket_calls("lead_read"), 480);
        let low = callers_of(Priority::Low, 64);
        for job in &plan.jobs {
            let range = callers_of(job.priority, 64);
            assert!(range.contains(&job.caller), "{job:?}");
            match job.priority {
                Priority::Low => assert_eq!(job.at, Duration::ZERO),
                _ => assert!(job.at < Duration::from_secs(10), "{job:?}"),
            }
        }
        // Every low caller has part of the burst, within one call of the others.
        let mut per_caller = vec![0u64; 64];
        for job in plan.jobs.iter().filter(|j| j.priority == Priority::Low) {
            per_caller[job.caller] += 1;
        }
        let busy = &per_caller[low];
        let (min, max) = (busy.iter().min().unwrap(), busy.iter().max().unwrap());
        assert!(max - min <= 1, "{busy:?}");
        let mut seqs: Vec<u64> = plan.jobs.iter().map(|j| j.seq).collect();
        seqs.dedup();
        assert_eq!(seqs.len(), plan.jobs.len());
    }

    #[test]
    fn a_shared_bucket_is_split_between_its_groups() {
        let s = scenario("shared-bucket", &[("write", 41)]);
        let counts = plan(&s, 10, 64, 3).counts();
        assert_eq!(counts[&(Group::LeadWrite, Priority::Low)], 205);
        assert_eq!(counts[&(Group::ActivityWrite, Priority::Low)], 205);
        assert_eq!(counts[&(Group::LeadWrite, Priority::High)], 20);
        assert_eq!(counts[&(Group::ActivityWrite, Priority::High)], 20);
    }

    #[test]
    fn a_pinned_bucket_keeps_each_group_on_its_own_replicas() {
        let s = scenario("shared-split", &[("write", 41)]);
        let plan = plan(&s, 10, 64, 3);
        let counts = plan.counts();
        assert_eq!(counts[&(Group::LeadWrite, Priority::Low)], 205);
        assert_eq!(counts[&(Group::ActivityWrite, Priority::Low)], 205);
        let mut callers = [std::collections::BTreeSet::new(), Default::default()];
        for job in &plan.jobs {
            let first = job.group == Group::LeadWrite;
            assert_eq!(job.caller % 3 == 0, first, "{job:?}");
            callers[usize::from(!first)].insert(job.caller);
        }
        // Every caller of each side works: 19 low, 1 normal, 2 high on replica 0.
        assert_eq!(callers[0].len(), 22);
        assert_eq!(callers[1].len(), 42);
    }

    #[test]
    fn a_lowered_limit_shrinks_the_burst() {
        let mut s = scenario("limit-lowered", &[("lead_read", 40)]);
        s.groups = vec![Group::LeadRead];
        s.change = Some(LimitChange {
            bucket: "lead_read",
            to: 20,
            at: 4.5,
        });
        let counts = plan(&s, 10, 64, 3).counts();
        // 4.5 windows at 40, 5.5 at 20.
        assert_eq!(counts[&(Group::LeadRead, Priority::Low)], 290);
        assert_eq!(counts[&(Group::LeadRead, Priority::High)], 40);
    }
}
