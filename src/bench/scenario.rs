//! The scenarios: which groups are loaded, Close's limits (drawn from the seed, never told
//! to the gateway), and what happens to them during the run.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::error::BenchError;
use super::ops::Group;

/// Every scenario, in the order they run.
pub const NAMES: &[&str] = &[
    "cold-start",
    "limit-lowered",
    "hidden-limits",
    "shared-bucket",
    "shared-split",
    "other-client",
];

/// The emulator's window; its statistics are per second, so the two must agree.
pub const WINDOW: Duration = Duration::from_secs(1);

/// Limits are drawn from this range, per bucket and window.
const LIMIT_RANGE: std::ops::RangeInclusive<u64> = 20..=80;

/// The groups most scenarios load: one per bucket.
const STANDARD: &[Group] = &[
    Group::LeadRead,
    Group::LeadWrite,
    Group::TaskRead,
    Group::ActivityRead,
    Group::Search,
];

/// Close lowers a bucket's limit while the backlog drains.
#[derive(Debug, Clone)]
pub struct LimitChange {
    pub bucket: &'static str,
    pub to: u64,
    /// Windows after the burst starts.
    pub at: f64,
}

/// An unannounced limit on a bucket.
#[derive(Debug, Clone, Copy)]
pub enum Hidden {
    /// Requests per window actually allowed, below the announced limit.
    Cap(u64),
    /// Probability of a 429 for a request the announced limit allows.
    Probability(f64),
}

/// Another client of the same key, outside the gateway, at a fixed rate.
#[derive(Debug, Clone)]
pub struct OtherClient {
    pub group: Group,
    pub per_window: u64,
    /// Windows after the burst starts.
    pub from: f64,
    pub windows: u64,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    pub groups: Vec<Group>,
    /// Announced per-key limit by bucket.
    pub limits: BTreeMap<&'static str, u64>,
    pub hidden: BTreeMap<&'static str, Hidden>,
    pub change: Option<LimitChange>,
    pub other: Option<OtherClient>,
    /// Each group's callers on their own replicas: a bucket's first group on replica 0, the
    /// others on the rest, so no replica sees two groups of one bucket (`workload.rs`).
    pub pinned: bool,
}

impl Scenario {
    /// Builds scenario `name` for a burst of `windows` windows, with limits drawn from
    /// `seed`; each scenario draws from its own stream, so `--scenario` does not change the
    /// others' limits. Events happen at the same fraction of the burst whatever its length.
    pub fn build(name: &str, seed: u64, windows: u32) -> Result<Scenario, BenchError> {
        let mut rng = StdRng::seed_from_u64(seed ^ fnv1a(name));
        let mut draw = |groups: &[Group]| {
            let mut limits = BTreeMap::new();
            for g in groups {
                limits
                    .entry(g.bucket())
                    .or_insert_with(|| rng.random_range(LIMIT_RANGE));
            }
            limits
        };
        let mut s = match name {
            "cold-start" => Scenario {
                name: "cold-start",
                about: "fresh Redis and replicas, limits unknown, a burst on five groups",
                groups: STANDARD.to_vec(),
                limits: draw(STANDARD),
                hidden: BTreeMap::new(),
                change: None,
                other: None,
                pinned: false,
            },
            "limit-lowered" => Scenario {
                name: "limit-lowered",
                about: "Close halves lead_read's limit 45% into the burst",
                groups: STANDARD.to_vec(),
                limits: draw(STANDARD),
                hidden: BTreeMap::new(),
                change: None,
                other: None,
                pinned: false,
            },
            "hidden-limits" => Scenario {
                name: "hidden-limits",
                about: "search is capped below its announced limit; lead_read gets random 429s",
                groups: STANDARD.to_vec(),
                limits: draw(STANDARD),
                hidden: BTreeMap::new(),
                change: None,
                other: None,
                pinned: false,
            },
            "shared-bucket" => {
                let groups = [Group::LeadWrite, Group::ActivityWrite];
                Scenario {
                    name: "shared-bucket",
                    about: "lead_write and activity_write, which Close counts in one bucket",
                    groups: groups.to_vec(),
                    limits: draw(&groups),
                    hidden: BTreeMap::new(),
                    change: None,
                    other: None,
                    pinned: false,
                }
            }
            "shared-split" => {
                let groups = [Group::LeadWrite, Group::ActivityWrite];
                Scenario {
                    name: "shared-split",
                    about: "shared-bucket, lead_write called on replica 0 only, activity_write on the others",
                    groups: groups.to_vec(),
                    limits: draw(&groups),
                    hidden: BTreeMap::new(),
                    change: None,
                    other: None,
                    pinned: true,
                }
            }
            "other-client" => Scenario {
                name: "other-client",
                about: "another client of the same key takes 30% of lead_read for 30% of the burst",
                groups: STANDARD.to_vec(),
                limits: draw(STANDARD),
                hidden: BTreeMap::new(),
                change: None,
                other: None,
                pinned: false,
            },
            other => return Err(BenchError::UnknownScenario(other.to_owned())),
        };
        s.add_events(f64::from(windows.max(1)));
        Ok(s)
    }

    fn add_events(&mut self, windows: f64) {
        let limit = |b: &str| self.limits.get(b).copied().unwrap_or(20);
        match self.name {
            "limit-lowered" => {
                let old = limit("lead_read");
                self.change = Some(LimitChange {
                    bucket: "lead_read",
                    to: (old / 2).max(10),
                    at: 0.45 * windows,
                });
            }
            "hidden-limits" => {
                let cap = (limit("search") * 3 / 4).max(10);
                self.hidden.insert("search", Hidden::Cap(cap));
                self.hidden.insert("lead_read", Hidden::Probability(0.01));
            }
            "other-client" => {
                let per_window = (limit("lead_read") * 3).div_ceil(10);
                self.other = Some(OtherClient {
                    group: Group::LeadRead,
                    per_window,
                    from: 0.33 * windows,
                    windows: (0.3 * windows).round().max(1.0) as u64,
                });
            }
            _ => {}
        }
    }

    /// The buckets loaded, in order.
    pub fn buckets(&self) -> Vec<&'static str> {
        self.limits.keys().copied().collect()
    }

    /// The groups of a bucket.
    pub fn groups_of(&self, bucket: &str) -> Vec<Group> {
        self.groups
            .iter()
            .copied()
            .filter(|g| g.bucket() == bucket)
            .collect()
    }

    /// What the bucket really allows per window `w` windows after the burst starts (a
    /// hidden cap included, random hidden 429s not), before any other client.
    pub fn capacity_at(&self, bucket: &str, w: f64) -> f64 {
        let mut limit = self.limits.get(bucket).copied().unwrap_or(0);
        let changed = self
            .change
            .as_ref()
            .filter(|c| c.bucket == bucket && w >= c.at);
        if let Some(change) = changed {
            limit = change.to;
        }
        if let Some(Hidden::Cap(cap)) = self.hidden.get(bucket) {
            limit = limit.min(*cap);
        }
        limit as f64
    }

    /// The bucket's limit as printed: `37`, `37→18`, `40 (hidden cap 30)`.
    pub fn limit_label(&self, bucket: &str) -> String {
        let limit = self.limits.get(bucket).copied().unwrap_or(0);
        let mut label = limit.to_string();
        if let Some(change) = self.change.as_ref().filter(|c| c.bucket == bucket) {
            label = format!("{limit}→{}", change.to);
        }
        match self.hidden.get(bucket) {
            Some(Hidden::Cap(cap)) => label.push_str(&format!(" (cap {cap})")),
            Some(Hidden::Probability(p)) => label.push_str(&format!(" (p {p})")),
            None => {}
        }
        label
    }

    /// The emulator's command line for this scenario's limits.
    pub fn emulator_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let limits: Vec<String> = self
            .limits
            .iter()
            .map(|(b, l)| format!("{b}={l}"))
            .collect();
        if !limits.is_empty() {
            args.push(format!("--bucket-limit={}", limits.join(",")));
        }
        for (bucket, hidden) in &self.hidden {
            match hidden {
                Hidden::Cap(cap) => args.push(format!("--hidden-limit={bucket}={cap}")),
                Hidden::Probability(p) => args.push(format!("--hidden-probability={bucket}={p}")),
            }
        }
        args.push(format!("--window-ms={}", WINDOW.as_millis()));
        args
    }
}

/// FNV-1a: a stable hash of the scenario's name for its random stream.
fn fnv1a(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_drawn_from_the_seed() {
        let a = Scenario::build("cold-start", 7, 10).unwrap();
        let b = Scenario::build("cold-start", 7, 10).unwrap();
        assert_eq!(a.limits, b.limits);
        assert_eq!(a.limits.len(), 5);
        assert!(a.limits.values().all(|l| LIMIT_RANGE.contains(l)));
        let shared = Scenario::build("shared-bucket", 7, 10).unwrap();
        assert_eq!(shared.buckets(), vec!["write"]);
        assert_eq!(
            shared.groups_of("write"),
            vec![Group::LeadWrite, Group::ActivityWrite]
        );
        assert!(Scenario::build("nope", 7, 10).is_err());
    }

    #[test]
    fn events_scale_with_the_burst() {
        let lowered = Scenario::build("limit-lowered", 1, 10).unwrap();
        let change = lowered.change.unwrap();
        assert!((change.at - 4.5).abs() < 1e-9);
        assert_eq!(change.to, (lowered.limits["lead_read"] / 2).max(10));
        let short = Scenario::build("limit-lowered", 1, 3).unwrap();
        assert!((short.change.unwrap().at - 1.35).abs() < 1e-9);
        let other = Scenario::build("other-client", 1, 10)
            .unwrap()
            .other
            .unwrap();
        assert!((other.from - 3.3).abs() < 1e-9);
        assert_eq!(other.windows, 3);
        let other = Scenario::build("other-client", 1, 3)
            .unwrap()
            .other
            .unwrap();
        assert_eq!(other.windows, 1);
    }

    #[test]
    fn capacity_follows_changes_and_caps() {
        let mut s = Scenario::build("limit-lowered", 1, 10).unwrap();
        s.limits.insert("lead_read", 40);
        s.change = Some(LimitChange {
            bucket: "lead_read",
            to: 20,
            at: 4.5,
        });
        assert_eq!(s.capacity_at("lead_read", 4.0), 40.0);
        assert_eq!(s.capacity_at("lead_read", 4.5), 20.0);
        assert_eq!(s.limit_label("lead_read"), "40→20");
        s.hidden.insert("search", Hidden::Cap(10));
        s.limits.insert("search", 30);
        assert_eq!(s.capacity_at("search", 0.0), 10.0);
        assert_eq!(s.limit_label("search"), "30 (cap 10)");
    }

    #[test]
    fn emulator_is_told_every_limit() {
        let mut s = Scenario::build("hidden-limits", 3, 10).unwrap();
        s.limits = [("lead_read", 40), ("search", 20)].into();
        s.hidden = [
            ("search", Hidden::Cap(15)),
            ("lead_read", Hidden::Probability(0.01)),
        ]
        .into();
        assert_eq!(
            s.emulator_args(),
            vec![
                "--bucket-limit=lead_read=40,search=20",
                "--hidden-probability=lead_read=0.01",
                "--hidden-limit=search=15",
                "--window-ms=1000",
            ]
        );
    }
}
