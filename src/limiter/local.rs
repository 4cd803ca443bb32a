//! The in-process backend: the same rules as the Redis script, state in a mutex, time from
//! `tokio::time::Instant` (so tests can pause the clock). Several limiters may share one
//! [`MemoryState`] to act as replicas of one deployment.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use super::backend::BucketRef;
use super::peers::{self, Entry};
use super::policy::{self, Answer, Ask, Bucket, GroupState, Obs, Params, View};

/// Shared limiter state held in memory.
#[derive(Debug)]
pub struct MemoryState {
    origin: Instant,
    /// Tells this state's windows from another's in a shared registry, as the state's
    /// version does in Redis.
    id: u64,
    groups: Mutex<HashMap<String, GroupState>>,
    /// The registries of windows each replica serves, by key pool (`peers.rs`); shared with
    /// the states made `beside` this one.
    peers: Arc<Mutex<HashMap<String, HashMap<String, String>>>>,
    /// Calls made to this state: what the Redis backend would send as script calls.
    calls: AtomicU64,
    /// Exchanges with the registry (`peers.rs`), apart: each replica makes them at its own
    /// pace while it gets answers, however many.
    registry_calls: AtomicU64,
}

impl Default for MemoryState {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryState {
    pub fn new() -> MemoryState {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        MemoryState {
            origin: Instant::now(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            groups: Mutex::new(HashMap::new()),
            peers: Arc::default(),
            calls: AtomicU64::new(0),
            registry_calls: AtomicU64::new(0),
        }
    }

    /// A state of its own that shares `other`'s clock and registry of windows: what the
    /// replicas of another version keep in the same Redis during a rolling update.
    pub fn beside(other: &MemoryState) -> MemoryState {
        MemoryState {
            origin: other.origin,
            peers: other.peers.clone(),
            ..MemoryState::new()
        }
    }

    /// Names this state in the registry of windows.
    pub(crate) fn state_id(&self) -> String {
        format!("memory{}", self.id)
    }

    /// Microseconds since this state was made: the clock of its decisions.
    pub(crate) fn now(&self) -> i64 {
        i64::try_from(self.origin.elapsed().as_micros()).unwrap_or(i64::MAX / 4)
    }

    /// Calls made so far: acquisitions and observations, each one script call with Redis.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Exchanges with the registry of windows so far, each one script call with Redis.
    pub fn registry_calls(&self) -> u64 {
        self.registry_calls.load(Ordering::Relaxed)
    }

    pub(crate) fn acquire(&self, bucket: &BucketRef, ask: &Ask, p: &Params) -> (Answer, View) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let now = self.now();
        self.with(bucket, |g| policy::acquire(g, now, ask, p))
    }

    pub(crate) fn observe(
        &self,
        bucket: &BucketRef,
        obs: &Obs,
        ask: Option<&Ask>,
        p: &Params,
    ) -> (View, Option<Answer>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let now = self.now();
        self.with(bucket, |g| {
            policy::observe_then_acquire(g, now, obs, ask, p)
        })
    }

    /// See `policy::join`: serves this group in `host`'s state from the returned time.
    pub(crate) fn join(&self, bucket: &BucketRef, host: &str) -> i64 {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let now = self.now();
        self.with(bucket, |g| policy::join(g, now, host))
    }

    pub(crate) fn adopt(&self, bucket: &BucketRef, from: i64) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let now = self.now();
        self.with(bucket, |g| policy::adopt(g, now, from));
    }

    pub(crate) fn leave(&self, bucket: &BucketRef) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let now = self.now();
        self.with(bucket, |g| policy::leave(g, now));
    }

    pub(crate) fn peers(&self, pool: &str, replica: &str, entries: &[Entry]) -> Vec<String> {
        self.registry_calls.fetch_add(1, Ordering::Relaxed);
        let now = self.now();
        let mut registries = match self.peers.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
        let registry = registries.entry(pool.to_owned()).or_default();
        peers::exchange_in(registry, now, peers::ttl(), &peers::own(replica), entries)
    }

    /// Starts a bucket with a limit learned elsewhere (the fallback after losing Redis).
    pub(crate) fn seed(&self, bucket: &BucketRef, lim: i64, win: i64) {
        if lim <= 0 || win <= 0 {
            return;
        }
        self.with(bucket, |g| {
            for key in &mut g.keys {
                if key.lim == 0 {
                    key.lim = lim;
                    key.win = win;
                    key.lsrc = 1;
                }
            }
        });
    }

    fn with<T>(&self, bucket: &BucketRef, f: impl FnOnce(&mut GroupState) -> T) -> T {
        let mut groups = match self.groups.lock() {
            Ok(groups) => groups,
            Err(poisoned) => poisoned.into_inner(),
        };
        let state = groups
            .entry(bucket.base.clone())
            .or_insert_with(|| GroupState {
                keys: vec![Bucket::default(); bucket.keys.len()],
                org: bucket.org.then(Bucket::default),
                demand: HashMap::new(),
                tick: [0; 3],
                host: String::new(),
            });
        f(state)
    }
}
