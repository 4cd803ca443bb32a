//! The shared limiter: every replica together at Close's full rate with no 429s.
//!
//! Each upstream call asks [`Limiter::acquire`] for room in its endpoint group and reports
//! Close's answer with [`Limiter::observe`]. The rules live in [`policy`] (pure, injected
//! clock); the state lives in Redis (one Lua script per backend call, see `lua/`) or in
//! process ([`MemoryState`]); [`dispatch`] runs one local line per group. Design, keys and
//! failure behaviour: `docs/limiter.md`.

mod backend;
mod config;
mod dispatch;
pub mod groups;
mod join;
mod local;
mod peers;
mod policy;
mod queue;
mod redis;
#[cfg(test)]
mod script_tests;
mod sharing;
mod snapshot;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use crate::close::ratelimit::RateLimitInfo;

pub use backend::state_version;
pub use config::LimiterConfig;
pub use groups::{GroupDef, GroupFileError, GroupTable};
pub use local::MemoryState;
pub use peers::EXCHANGE as REGISTRY_EXCHANGE;
pub use redis::SCRIPT;

use backend::{Backend, BucketRef, Origin};
use dispatch::Group;

/// Priority of a call, from the gRPC metadata `x-priority`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Priority {
    High,
    #[default]
    Normal,
    Low,
}

impl Priority {
    pub const ALL: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Low];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }
}

/// An `x-priority` value other than high, normal or low.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("priority must be high, normal or low")]
pub struct UnknownPriority;

impl FromStr for Priority {
    type Err = UnknownPriority;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "high" => Ok(Priority::High),
            "normal" => Ok(Priority::Normal),
            "low" => Ok(Priority::Low),
            _ => Err(UnknownPriority),
        }
    }
}

/// What a call asks for.
#[derive(Debug, Clone)]
pub struct AcquireRequest {
    pub group: String,
    pub priority: Priority,
    /// `x-caller`: calls of one priority share the room fairly between callers.
    pub caller: String,
    pub deadline: Option<tokio::time::Instant>,
}

/// Room for one upstream call. Hand it back to [`Limiter::observe`] with Close's answer.
#[derive(Debug)]
pub struct Permit {
    pub group: String,
    /// The group whose line and state granted it: `group`, or the group it joined.
    line: String,
    /// Time spent waiting in the limiter.
    pub waited: Duration,
    /// Which API key of the pool to send the call with (0 without a pool).
    pub key_index: usize,
    seq: i64,
    oseq: i64,
    probe: bool,
    /// A `high` call got a slot booked at a lower priority (see `Obs::borrowed`).
    borrowed: bool,
    issued: tokio::time::Instant,
    origin: Origin,
    /// Set until observed: a dropped probe permit frees the probe for the next call.
    release: Option<Weak<Inner>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let Some(inner) = self.release.take().and_then(|w| w.upgrade()) else {
            return;
        };
        if !self.probe {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let permit = Permit {
            group: std::mem::take(&mut self.group),
            line: std::mem::take(&mut self.line),
            release: None,
            ..*self
        };
        runtime.spawn(async move {
            Limiter { inner }
                .report(permit, 0, &RateLimitInfo::default())
                .await;
        });
    }
}

/// Why a call got no room.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LimiterError {
    #[error("too many calls wait for endpoint group {group}")]
    QueueFull { group: String },
    #[error("endpoint group {group} has no room before the deadline; retry in {retry_after:?}")]
    DeadlineUnreachable {
        group: String,
        retry_after: Duration,
    },
    #[error("endpoint group {group} is paused by Close; retry in {retry_after:?}")]
    Paused {
        group: String,
        retry_after: Duration,
    },
    #[error("limiter backend failed: {0}")]
    Backend(String),
}

impl LimiterError {
    /// The time after which trying again may succeed, for gRPC RetryInfo.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LimiterError::DeadlineUnreachable { retry_after, .. }
            | LimiterError::Paused { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// Where a group's limit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitSource {
    /// The configured default: Close has not announced one (yet).
    Default,
    /// Announced by Close's headers.
    Learned { at: SystemTime },
}

/// One group as this replica sees it, for `RateLimitService.GetRateLimits`.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSnapshot {
    pub group: String,
    pub limit: u64,
    pub window: Duration,
    pub source: LimitSource,
    pub estimated_remaining: u64,
    pub paused_until: Option<SystemTime>,
    /// Waiting on this replica: high, normal, low.
    pub queue_local: [u32; 3],
    /// Waiting on every replica as last reported to the shared state, when known.
    pub queue_all: Option<[u32; 3]>,
    /// 429s seen for this group (all replicas when shared).
    pub throttled: u64,
    pub last_header: Option<String>,
    /// Groups this replica suspects Close counts in one bucket with this one, undeclared
    /// (see `sharing.rs`): declare them as one group in the group file.
    pub suspected_shared_with: Vec<String>,
    /// The group whose line and shared state serve this one's calls on this replica, when
    /// the pair is served as one (`join.rs`).
    pub served_in: Option<String>,
}

/// The limiter. Cheap to clone; every clone shares the same lines and backend.
#[derive(Clone)]
pub struct Limiter {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    config: LimiterConfig,
    backend: Backend,
    pool: String,
    groups: Mutex<HashMap<String, Arc<Group>>>,
    sharing: sharing::Sharing,
    peers: peers::Peers,
    /// Groups served in another group's line and state (`policy/join.rs`): guest → host.
    routes: Mutex<HashMap<String, String>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let groups = self
            .groups
            .get_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        for group in groups.values() {
            group.close();
        }
    }
}

impl Limiter {
    /// A limiter for a single replica, state in this process.
    pub fn in_process(config: LimiterConfig) -> Limiter {
        Self::with_memory(config, Arc::new(MemoryState::new()))
    }

    /// A limiter whose state is `state`, which other limiters may share (tests, simulations).
    pub fn with_memory(config: LimiterConfig, state: Arc<MemoryState>) -> Limiter {
        Self::build(config, Backend::Memory(state))
    }

    /// A limiter sharing its state through one Redis server (`redis://host:port/db`).
    pub async fn redis(config: LimiterConfig, url: &str) -> Result<Limiter, LimiterError> {
        let backend = redis::RedisBackend::single(url, &config).await?;
        export_state_version();
        Ok(Self::build(config, Backend::Redis(Box::new(backend))))
    }

    /// A limiter sharing its state through a Redis Cluster given by seed nodes.
    pub async fn redis_cluster(
        config: LimiterConfig,
        seeds: &[String],
    ) -> Result<Limiter, LimiterError> {
        let backend = redis::RedisBackend::cluster(seeds, &config).await?;
        export_state_version();
        Ok(Self::build(config, Backend::Redis(Box::new(backend))))
    }

    fn build(config: LimiterConfig, backend: Backend) -> Limiter {
        let pool = config.pool_id();
        Limiter {
            inner: Arc::new(Inner {
                config,
                backend,
                pool,
                groups: Mutex::new(HashMap::new()),
                sharing: sharing::Sharing::default(),
                peers: peers::Peers::default(),
                routes: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The endpoint-group table.
    pub fn groups(&self) -> &GroupTable {
        &self.inner.config.groups
    }

    /// Waits for room in `req.group`: by priority, then a fair turn between callers, then
    /// arrival, bounded by the deadline. Cancel-safe: dropping the future leaves the line and
    /// uses no room.
    pub async fn acquire(&self, req: AcquireRequest) -> Result<Permit, LimiterError> {
        let group = self.inner.line(&req.group);
        group.acquire(&self.inner, req).await
    }

    /// Feeds back what Close answered to the call sent under `permit`: the HTTP status and
    /// the parsed rate-limit information. A 429 pauses the group for every replica until
    /// Close's reset; the caller may then [`acquire`](Self::acquire) again.
    pub async fn observe(&self, permit: Permit, status: u16, info: &RateLimitInfo) {
        self.report(permit, status, info).await;
    }

    async fn report(&self, mut permit: Permit, status: u16, info: &RateLimitInfo) {
        permit.release = None;
        let group = self.inner.group(&permit.line);
        let now = tokio::time::Instant::now();
        let sent = permit.issued;
        let seen = self
            .inner
            .sharing
            .record(&permit.group, sent, now, status, info);
        self.inner.act(seen);
        if self.inner.peers.due(now, self.inner.sharing.fresh()) {
            tokio::spawn(peers::exchange(self.inner.clone()));
        }
        group.observe(&self.inner, &permit, status, info).await;
    }

    /// What this replica knows of every group of the table and every group seen.
    pub fn snapshot(&self) -> Vec<GroupSnapshot> {
        let mut names: Vec<String> = self
            .inner
            .config
            .groups
            .groups()
            .iter()
            .map(|g| g.name.clone())
            .collect();
        let seen: Vec<Arc<Group>> = self
            .inner
            .groups
            .lock()
            .map(|g| g.values().cloned().collect())
            .unwrap_or_default();
        for group in &seen {
            if !names.contains(&group.name) {
                names.push(group.name.clone());
            }
        }
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let group = seen.iter().find(|g| g.name == name);
            out.push(snapshot::snapshot(
                &self.inner,
                &name,
                group.map(Arc::as_ref),
            ));
        }
        out
    }
}

impl Inner {
    /// The line serving calls of group `name`: its own, or the one of the group it joined.
    fn line(self: &Arc<Self>, name: &str) -> Arc<Group> {
        let host = self.routes.lock().ok().and_then(|r| r.get(name).cloned());
        self.group(host.as_deref().unwrap_or(name))
    }

    fn route(&self, guest: &str, host: &str) {
        if let Ok(mut routes) = self.routes.lock() {
            routes.insert(guest.to_owned(), host.to_owned());
        }
    }

    fn group(self: &Arc<Self>, name: &str) -> Arc<Group> {
        let Ok(mut groups) = self.groups.lock() else {
            // A poisoned map only means another thread panicked; serve from a fresh line.
            return Group::start(self, self.bucket(name));
        };
        if let Some(group) = groups.get(name) {
            return group.clone();
        }
        let group = Group::start(self, self.bucket(name));
        groups.insert(name.to_owned(), group.clone());
        group
    }

    fn bucket(&self, group: &str) -> BucketRef {
        BucketRef::new(&self.pool, group, &self.config)
    }
}

/// Exports the version of the shared state, so that a rolling update shows as replicas of
/// two versions (see `state_version`).
fn export_state_version() {
    metrics::gauge!("limiter_state_version", "version" => state_version()).set(1.0);
}
