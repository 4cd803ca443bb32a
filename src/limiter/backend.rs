//! Where the shared state lives: in this process, or in Redis with a local fallback share
//! while Redis cannot be reached.

use std::sync::{Arc, LazyLock};

use sha2::{Digest, Sha256};

use super::config::{LimiterConfig, hex};
use super::local::MemoryState;
use super::peers::Entry;
use super::policy::{Answer, Ask, Obs, Params, View};
use super::redis::{RedisBackend, SCRIPT};

/// The version of the shared state: 8 hex digits of SHA-256 over the script's code, which
/// defines the state's fields and their meaning. Replicas of two versions (a rolling update)
/// then keep apart states and see each other's calls as another client's, in Close's
/// answers, instead of misreading each other's fields.
pub fn state_version() -> &'static str {
    static VERSION: LazyLock<String> = LazyLock::new(|| version_of(SCRIPT));
    &VERSION
}

/// Comment and blank lines are left out: editing them does not split the state.
fn version_of(script: &str) -> String {
    let mut digest = Sha256::new();
    for line in script.lines().map(str::trim) {
        if line.is_empty() || line.starts_with("--") {
            continue;
        }
        digest.update(line.as_bytes());
        digest.update(b"\n");
    }
    hex(&digest.finalize()[..4])
}

/// Names of one group's state. Every key carries the hash tag `{cgw:<version>:<pool>:<group>}`
/// so one script call touches one Redis Cluster slot; key ids are SHA-256 prefixes, never
/// keys.
#[derive(Debug, Clone)]
pub(crate) struct BucketRef {
    pub group: String,
    pub base: String,
    pub demand: String,
    pub org_key: String,
    pub keys: Vec<String>,
    pub org: bool,
    pub params: Params,
}

impl BucketRef {
    pub fn new(pool: &str, group: &str, config: &LimiterConfig) -> BucketRef {
        // Braces would break the hash tag; nothing else in a group name matters to Redis.
        let safe: String = group
            .chars()
            .map(|c| if c == '{' || c == '}' { '_' } else { c })
            .collect();
        let base = format!("{{cgw:{}:{pool}:{safe}}}", state_version());
        let keys = if config.key_ids.is_empty() {
            vec![format!("{base}:key")]
        } else {
            config
                .key_ids
                .iter()
                .map(|id| format!("{base}:key:{}", &id[..id.len().min(16)]))
                .collect()
        };
        let params = config.params_for(&config.params(), group);
        BucketRef {
            group: group.to_owned(),
            demand: format!("{base}:demand"),
            org_key: format!("{base}:org"),
            org: keys.len() > 1,
            keys,
            base,
            params,
        }
    }
}

/// Which state granted a permit; its observation goes back to the same state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Shared,
    Fallback,
}

pub(crate) enum Backend {
    Memory(Arc<MemoryState>),
    Redis(Box<RedisBackend>),
}

impl Backend {
    pub async fn acquire(&self, bucket: &BucketRef, ask: &Ask) -> (Answer, View, Origin) {
        match self {
            Backend::Memory(state) => {
                let (answer, view) = state.acquire(bucket, ask, &bucket.params);
                (answer, view, Origin::Shared)
            }
            Backend::Redis(redis) => redis.acquire(bucket, ask).await,
        }
    }

    /// Reports one answer and, with `ask`, asks for more slots in the same round trip. The
    /// answer's slots come from the returned origin.
    pub async fn observe(
        &self,
        bucket: &BucketRef,
        obs: &Obs,
        ask: Option<&Ask>,
        origin: Origin,
    ) -> Option<(View, Option<Answer>, Origin)> {
        match self {
            Backend::Memory(state) => {
                let (view, answer) = state.observe(bucket, obs, ask, &bucket.params);
                Some((view, answer, Origin::Shared))
            }
            Backend::Redis(redis) => redis.observe(bucket, obs, ask, origin).await,
        }
    }

    /// See `policy::join`: the time from which `bucket`'s group is served in `host`'s
    /// state, 0 when it was already; None when the shared state cannot be reached (the
    /// groups stay apart).
    pub async fn join(&self, bucket: &BucketRef, host: &str) -> Option<i64> {
        match self {
            Backend::Memory(state) => Some(state.join(bucket, host)),
            Backend::Redis(redis) => redis.join(bucket, host).await,
        }
    }

    /// See `policy::adopt`.
    pub async fn adopt(&self, bucket: &BucketRef, from: i64) {
        match self {
            Backend::Memory(state) => state.adopt(bucket, from),
            Backend::Redis(redis) => redis.adopt_or_leave(bucket, Some(from)).await,
        }
    }

    /// Names the state in the registry of windows: replicas with the same one share it.
    pub fn state_id(&self) -> String {
        match self {
            Backend::Memory(state) => state.state_id(),
            Backend::Redis(_) => state_version().to_owned(),
        }
    }

    /// Publishes `replica`'s windows in the pool's registry (`peers.rs`) and answers every
    /// other replica's live entries; None when the shared state cannot be reached.
    pub async fn peers(&self, pool: &str, replica: &str, entries: &[Entry]) -> Option<Vec<String>> {
        match self {
            Backend::Memory(state) => Some(state.peers(pool, replica, entries)),
            Backend::Redis(redis) => redis.peers(pool, replica, entries).await,
        }
    }

    /// See `policy::leave`.
    pub async fn leave(&self, bucket: &BucketRef) {
        match self {
            Backend::Memory(state) => state.leave(bucket),
            Backend::Redis(redis) => redis.adopt_or_leave(bucket, None).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::version_of;

    #[test]
    fn the_state_version_follows_the_code_not_its_comments() {
        let code = "local a = 1\nreturn a\n";
        let commented = "-- what a is\nlocal a = 1\n\n  -- why\nreturn a\n";
        assert_eq!(version_of(code), version_of(commented));
        assert_ne!(version_of(code), version_of("local a = 2\nreturn a\n"));
        assert_eq!(version_of(code).len(), 8);
    }
}
