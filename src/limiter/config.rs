//! The limiter's settings and their defaults.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::groups::GroupTable;
use super::policy::Params;

/// Settings of the limiter. `Default` is what production uses unless told otherwise.
#[derive(Debug, Clone)]
pub struct LimiterConfig {
    /// Endpoint groups and their conservative default limits.
    pub groups: GroupTable,
    /// Default limit and window of a group the table does not list.
    pub default_limit: u64,
    pub default_window: Duration,
    /// Share of each limit left unused (0.02 = 2 %, rounded down to whole calls, so a limit
    /// of 16 loses nothing and a limit of 100 loses 2). The targets need it below 0.05.
    pub safety_margin: f64,
    /// Calls that may wait per group on one replica; more are rejected at once.
    pub queue_bound: usize,
    /// SHA-256 (hex) of each API key of the pool, in the order the client holds the keys.
    /// Empty means one unnamed key. Set with [`LimiterConfig::with_api_keys`].
    pub key_ids: Vec<String>,
    /// Organization limit per group with several keys; `None` uses
    /// `org_multiplier` × the smallest learned key limit.
    pub org_limit: Option<u64>,
    pub org_multiplier: u64,
    /// Bound of every Redis call.
    pub redis_timeout: Duration,
    /// After a failed Redis call, how long to serve from the local fallback share.
    pub redis_retry: Duration,
    /// Replicas assumed while Redis is lost: each takes 1/N of the learned limit.
    pub fallback_replicas: u64,
    /// How long a learned limit is kept without being confirmed.
    pub learned_ttl: Duration,
    /// How long one probe call (limit unknown) may hold the group before another may go.
    pub probe_timeout: Duration,
    /// While another replica probes, how often to look whether its answer arrived (five
    /// times as often for `high` calls).
    pub probe_poll: Duration,
    /// Pause after a 429 that names no reset at all.
    pub default_pause: Duration,
    /// Least time kept free before a window's end (grows to the measured round trip).
    pub min_guard: Duration,
    /// Pacing steps (time left over room left) that normal and low calls may book ahead.
    pub horizon_normal: u32,
    pub horizon_low: u32,
    /// Slots at the end of a window kept for high priority until they are due.
    pub reserve_high: u32,
    /// Most slots asked in one backend call.
    pub batch_max: u32,
    /// Token intervals between the asks of replicas waiting for the same room.
    pub ask_gap: u32,
    /// How long a replica's reported waiting calls count for other replicas.
    pub demand_ttl: Duration,
    /// Names this replica in the shared demand table.
    pub replica_id: String,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        LimiterConfig {
            groups: GroupTable::default(),
            default_limit: 10,
            default_window: Duration::from_secs(1),
            safety_margin: 0.02,
            queue_bound: 10_000,
            key_ids: Vec::new(),
            org_limit: None,
            org_multiplier: 3,
            redis_timeout: Duration::from_millis(250),
            redis_retry: Duration::from_secs(1),
            fallback_replicas: 3,
            learned_ttl: Duration::from_secs(3600),
            probe_timeout: Duration::from_secs(30),
            probe_poll: Duration::from_millis(25),
            default_pause: Duration::from_secs(1),
            min_guard: Duration::from_millis(2),
            horizon_normal: 4,
            horizon_low: 4,
            reserve_high: 1,
            batch_max: 16,
            ask_gap: 2,
            demand_ttl: Duration::from_secs(1),
            replica_id: random_id(),
        }
    }
}

impl LimiterConfig {
    /// Names the pool's API keys by their SHA-256; the keys themselves are not kept.
    pub fn with_api_keys(mut self, keys: &[&str]) -> Self {
        self.key_ids = keys
            .iter()
            .map(|k| hex(&Sha256::digest(k.as_bytes())))
            .collect();
        self
    }

    /// Keys of the pool (at least one).
    pub(crate) fn key_count(&self) -> usize {
        self.key_ids.len().max(1)
    }

    /// Short id of the pool, shared by every replica with the same keys.
    pub(crate) fn pool_id(&self) -> String {
        let mut ids = self.key_ids.clone();
        ids.sort();
        let digest = Sha256::digest(ids.join(",").as_bytes());
        hex(&digest)[..16].to_owned()
    }

    pub(crate) fn params(&self) -> Params {
        Params {
            margin_pm: (self.safety_margin.clamp(0.0, 0.5) * 1000.0) as i64,
            share: 1,
            guard_min: micros(self.min_guard),
            horizon: [
                0,
                i64::from(self.horizon_normal),
                i64::from(self.horizon_low),
            ],
            reserve_high: i64::from(self.reserve_high),
            probe_timeout: micros(self.probe_timeout),
            learned_ttl: micros(self.learned_ttl),
            default_limit: self.default_limit.clamp(1, 1 << 40) as i64,
            default_window: micros(self.default_window).max(1),
            default_pause: micros(self.default_pause),
            demand_ttl: micros(self.demand_ttl),
            org_limit: self.org_limit.unwrap_or(0).min(1 << 40) as i64,
            org_mult: if self.key_count() > 1 {
                self.org_multiplier.min(1 << 20) as i64
            } else {
                0
            },
            ask_gap: i64::from(self.ask_gap),
        }
    }

    /// Parameters for one group: its own default limit and window from the table.
    pub(crate) fn params_for(&self, base: &Params, group: &str) -> Params {
        let mut p = base.clone();
        if let Some(def) = self.groups.group(group) {
            p.default_limit = def.limit.clamp(1, 1 << 40) as i64;
            p.default_window = micros(def.window).max(1);
        }
        p
    }
}

pub(crate) fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 4)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn random_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}
