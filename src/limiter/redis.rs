//! The Redis backend: one EVALSHA of the limiter script (`lua/*.lua`, `SCRIPT`) per backend
//! call, on a single Redis or a Redis Cluster, every call bounded by a timeout.
//!
//! When a call fails or times out, the group is served for `redis_retry` from a local
//! fallback state that grants 1/`fallback_replicas` of the limit last learned (Doorman's
//! "safe share"), so losing Redis neither stops traffic nor lets every replica spend the
//! whole limit. A gauge `limiter_redis_fallback` shows it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{RedisError, Script};
use tokio::time::Instant;

use super::LimiterError;
use super::backend::{BucketRef, Origin};
use super::config::LimiterConfig;
use super::local::MemoryState;
use super::peers::{self, Entry, PEERS_SCRIPT, registry_key};
use super::policy::{Answer, Ask, Grant, Obs, View, Why};

/// The limiter's Lua script, kept in four files by concern (see `lua/state.lua`) and run as
/// one.
pub const SCRIPT: &str = concat!(
    include_str!("lua/state.lua"),
    include_str!("lua/slot.lua"),
    include_str!("lua/shared.lua"),
    include_str!("lua/observe.lua"),
);

const VIEW_AT: usize = 4;
const VIEW_LEN: usize = 11;

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

pub(crate) struct RedisBackend {
    conn: Conn,
    script: Script,
    peers: Script,
    timeout: Duration,
    retry: Duration,
    share: i64,
    fallback: MemoryState,
    down_until: Mutex<Option<Instant>>,
    /// Last limit and window seen per group, to seed the fallback.
    known: Mutex<HashMap<String, (i64, i64)>>,
}

fn backend_error(err: impl std::fmt::Display) -> LimiterError {
    LimiterError::Backend(err.to_string())
}

impl RedisBackend {
    pub async fn single(url: &str, config: &LimiterConfig) -> Result<RedisBackend, LimiterError> {
        let client = redis::Client::open(url).map_err(backend_error)?;
        let settings = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.redis_timeout))
            .set_response_timeout(Some(config.redis_timeout))
            .set_number_of_retries(1);
        let manager = tokio::time::timeout(
            config.redis_timeout * 4,
            ConnectionManager::new_with_config(client, settings),
        )
        .await
        .map_err(|_| LimiterError::Backend("redis connection timed out".into()))?
        .map_err(backend_error)?;
        Self::with(Conn::Single(manager), config).preload().await
    }

    pub async fn cluster(
        seeds: &[String],
        config: &LimiterConfig,
    ) -> Result<RedisBackend, LimiterError> {
        let client = ClusterClient::builder(seeds.to_vec())
            .connection_timeout(config.redis_timeout)
            .response_timeout(config.redis_timeout)
            .retries(1)
            .build()
            .map_err(backend_error)?;
        let conn = tokio::time::timeout(config.redis_timeout * 4, client.get_async_connection())
            .await
            .map_err(|_| LimiterError::Backend("redis cluster connection timed out".into()))?
            .map_err(backend_error)?;
        Self::with(Conn::Cluster(conn), config).preload().await
    }

    fn with(conn: Conn, config: &LimiterConfig) -> RedisBackend {
        RedisBackend {
            conn,
            script: Script::new(SCRIPT),
            peers: Script::new(PEERS_SCRIPT),
            timeout: config.redis_timeout,
            retry: config.redis_retry,
            share: config.fallback_replicas.clamp(1, 1000) as i64,
            fallback: MemoryState::new(),
            down_until: Mutex::new(None),
            known: Mutex::new(HashMap::new()),
        }
    }

    /// Loads the script (on every node of a cluster) once, so that the first calls do not
    /// each meet NOSCRIPT and load it again. A Redis that forgot it is still served: EVALSHA
    /// reloads on NOSCRIPT.
    async fn preload(self) -> Result<RedisBackend, LimiterError> {
        let load = async {
            match self.conn.clone() {
                Conn::Single(mut c) => {
                    self.peers.load_async(&mut c).await?;
                    self.script.load_async(&mut c).await
                }
                Conn::Cluster(mut c) => {
                    self.peers.load_async(&mut c).await?;
                    self.script.load_async(&mut c).await
                }
            }
        };
        match tokio::time::timeout(self.timeout * 4, load).await {
            Ok(loaded) => loaded.map_err(backend_error)?,
            Err(_) => return Err(LimiterError::Backend("redis script load timed out".into())),
        };
        Ok(self)
    }

    pub async fn acquire(&self, bucket: &BucketRef, ask: &Ask) -> (Answer, View, Origin) {
        if self.is_up() {
            match self.eval_acquire(bucket, ask, None).await {
                Ok((answer, view)) => {
                    self.remember(bucket, &view);
                    return (answer, view, Origin::Shared);
                }
                Err(err) => self.went_down(&bucket.group, &err),
            }
        }
        self.seed_fallback(bucket);
        let params = self.fallback_params(bucket);
        let (answer, view) = self.fallback.acquire(bucket, ask, &params);
        (answer, view, Origin::Fallback)
    }

    pub async fn observe(
        &self,
        bucket: &BucketRef,
        obs: &Obs,
        ask: Option<&Ask>,
        origin: Origin,
    ) -> Option<(View, Option<Answer>, Origin)> {
        let params = self.fallback_params(bucket);
        if origin == Origin::Fallback {
            let (view, answer) = self.fallback.observe(bucket, obs, ask, &params);
            return Some((view, answer, Origin::Fallback));
        }
        if self.is_up() {
            match self.eval_observe(bucket, obs, ask, None).await {
                Ok((view, answer)) => {
                    self.remember(bucket, &view);
                    return Some((view, answer, Origin::Shared));
                }
                Err(err) => self.went_down(&bucket.group, &err),
            }
        }
        // A permit of the shared state has no meaning in the fallback's sequence, but a 429
        // must still pause this replica.
        if obs.status != 429 {
            return None;
        }
        let local = Obs {
            seq: 0,
            oseq: 0,
            remaining: -1,
            probe: false,
            ..obs.clone()
        };
        let (view, _) = self.fallback.observe(bucket, &local, None, &params);
        Some((view, None, Origin::Fallback))
    }

    pub async fn join(&self, bucket: &BucketRef, host: &str) -> Option<i64> {
        if !self.is_up() {
            return None;
        }
        match self.eval_join(bucket, host, None).await {
            Ok(from) => Some(from),
            Err(err) => {
                self.went_down(&bucket.group, &err);
                None
            }
        }
    }

    pub async fn adopt_or_leave(&self, bucket: &BucketRef, from: Option<i64>) {
        if !self.is_up() {
            return;
        }
        if let Err(err) = self.eval_adopt_or_leave(bucket, from, None).await {
            self.went_down(&bucket.group, &err);
        }
    }

    pub async fn peers(&self, pool: &str, replica: &str, entries: &[Entry]) -> Option<Vec<String>> {
        // Only the calls of groups decide when Redis is down or back (`is_up`), as only
        // they have a fallback; an exchange skips a Redis known to be down.
        if self.known_down() {
            metrics::counter!("limiter_registry_exchanges_total", "outcome" => "skipped")
                .increment(1);
            return None;
        }
        match self.eval_peers(pool, replica, entries, None).await {
            Ok(out) => Some(out),
            Err(err) => {
                tracing::debug!(error = %err, "limiter registry exchange failed");
                metrics::counter!("limiter_registry_exchanges_total", "outcome" => "failed")
                    .increment(1);
                None
            }
        }
    }

    /// Runs `lua/peers.lua` for `replica`; `now` replaces Redis's clock in tests.
    pub async fn eval_peers(
        &self,
        pool: &str,
        replica: &str,
        entries: &[Entry],
        now: Option<i64>,
    ) -> Result<Vec<String>, LimiterError> {
        let mut inv = self.peers.prepare_invoke();
        inv.key(registry_key(pool))
            .arg(now.map(|n| n.to_string()).unwrap_or_default())
            .arg(peers::ttl())
            .arg(peers::own(replica));
        for e in entries {
            inv.arg(&e.field).arg(e.limit).arg(e.end).arg(&e.counts);
        }
        self.run(&inv).await
    }

    /// Runs `policy::join` on the guest's state: the time from which it is served in
    /// `host`'s. `now` replaces Redis's clock in tests.
    pub async fn eval_join(
        &self,
        bucket: &BucketRef,
        host: &str,
        now: Option<i64>,
    ) -> Result<i64, LimiterError> {
        let mut inv = self.invocation(bucket, "join", now);
        inv.arg(host);
        number(&self.run(&inv).await?, 1)
    }

    /// Runs `policy::adopt` (with `from`) or, without, `policy::leave`.
    pub async fn eval_adopt_or_leave(
        &self,
        bucket: &BucketRef,
        from: Option<i64>,
        now: Option<i64>,
    ) -> Result<(), LimiterError> {
        let mut inv = self.invocation(bucket, if from.is_some() { "adopt" } else { "leave" }, now);
        if let Some(from) = from {
            inv.arg(from);
        }
        self.run(&inv).await.map(|_| ())
    }

    /// Runs the acquire step; `now` replaces Redis's clock in tests.
    pub async fn eval_acquire(
        &self,
        bucket: &BucketRef,
        ask: &Ask,
        now: Option<i64>,
    ) -> Result<(Answer, View), LimiterError> {
        let mut inv = self.invocation(bucket, "acquire", now);
        inv.arg(ask.prio)
            .arg(ask.n)
            .arg(ask.max_wait)
            .arg(&ask.replica)
            .arg(&ask.demand[..]);
        let out = self.run(&inv).await?;
        let (answer, view) = decode(&out)?;
        let answer =
            answer.ok_or_else(|| LimiterError::Backend("limiter script: no answer".into()))?;
        Ok((answer, view))
    }

    /// Runs the observe step, then the acquire step when `ask` is given; `now` replaces
    /// Redis's clock in tests.
    pub async fn eval_observe(
        &self,
        bucket: &BucketRef,
        o: &Obs,
        ask: Option<&Ask>,
        now: Option<i64>,
    ) -> Result<(View, Option<Answer>), LimiterError> {
        let mut inv = self.invocation(bucket, "observe", now);
        inv.arg(o.key)
            .arg(o.seq)
            .arg(i64::from(o.probe))
            .arg(o.status)
            .arg(o.limit)
            .arg(o.remaining)
            .arg(o.reset)
            .arg(o.window)
            .arg(o.retry_after)
            .arg(i64::from(o.org_typed))
            .arg(o.rtt)
            .arg(i64::from(o.borrowed))
            .arg(i64::from(o.alone))
            .arg(o.oseq)
            .arg(&o.replica)
            .arg(&o.demand[..]);
        match ask {
            Some(ask) => inv.arg(ask.prio).arg(ask.n).arg(ask.max_wait),
            None => inv.arg(0).arg(0).arg(0),
        };
        let out = self.run(&inv).await?;
        let (answer, view) = decode(&out)?;
        Ok((view, answer))
    }

    fn invocation(
        &self,
        bucket: &BucketRef,
        op: &str,
        now: Option<i64>,
    ) -> redis::ScriptInvocation<'_> {
        let p = &bucket.params;
        let mut inv = self.script.prepare_invoke();
        inv.key(&bucket.demand).key(&bucket.org_key);
        for key in &bucket.keys {
            inv.key(key);
        }
        inv.arg(op)
            .arg(now.map(|n| n.to_string()).unwrap_or_default())
            .arg(i64::from(bucket.org))
            .arg(p.margin_pm)
            .arg(p.share)
            .arg(p.guard_min)
            .arg(p.horizon[1])
            .arg(p.horizon[2])
            .arg(p.reserve_high)
            .arg(p.probe_timeout)
            .arg(p.learned_ttl)
            .arg(p.default_limit)
            .arg(p.default_window)
            .arg(p.default_pause)
            .arg(p.demand_ttl)
            .arg(p.org_limit)
            .arg(p.org_mult)
            .arg(p.ask_gap);
        inv
    }

    async fn run(&self, inv: &redis::ScriptInvocation<'_>) -> Result<Vec<String>, LimiterError> {
        let call = async {
            match self.conn.clone() {
                Conn::Single(mut c) => inv.invoke_async::<Vec<String>>(&mut c).await,
                Conn::Cluster(mut c) => inv.invoke_async::<Vec<String>>(&mut c).await,
            }
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result.map_err(|e: RedisError| backend_error(e)),
            Err(_) => Err(LimiterError::Backend("redis call timed out".into())),
        }
    }

    fn is_up(&self) -> bool {
        let Ok(mut down) = self.down_until.lock() else {
            return true;
        };
        match *down {
            Some(until) if Instant::now() < until => false,
            Some(_) => {
                *down = None;
                metrics::gauge!("limiter_redis_fallback").set(0.0);
                tracing::info!("limiter trying redis again");
                true
            }
            None => true,
        }
    }

    /// Whether Redis failed less than `redis_retry` ago; unlike `is_up`, changes nothing.
    fn known_down(&self) -> bool {
        let now = Instant::now();
        self.down_until
            .lock()
            .is_ok_and(|down| down.is_some_and(|until| now < until))
    }

    fn went_down(&self, group: &str, err: &LimiterError) {
        tracing::warn!(group, error = %err, "limiter redis failed, using local fallback share");
        metrics::gauge!("limiter_redis_fallback").set(1.0);
        if let Ok(mut down) = self.down_until.lock() {
            *down = Some(Instant::now() + self.retry);
        }
    }

    fn remember(&self, bucket: &BucketRef, view: &View) {
        if view.lim <= 0 {
            return;
        }
        if let Ok(mut known) = self.known.lock() {
            known.insert(bucket.base.clone(), (view.lim, view.win));
        }
    }

    fn seed_fallback(&self, bucket: &BucketRef) {
        let known = self
            .known
            .lock()
            .ok()
            .and_then(|k| k.get(&bucket.base).copied());
        if let Some((lim, win)) = known {
            let per_key = lim / bucket.keys.len().max(1) as i64;
            self.fallback.seed(bucket, per_key, win);
        }
    }

    fn fallback_params(&self, bucket: &BucketRef) -> super::policy::Params {
        let mut params = bucket.params.clone();
        params.share = self.share;
        params
    }
}

fn number(out: &[String], i: usize) -> Result<i64, LimiterError> {
    out.get(i)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| LimiterError::Backend(format!("limiter script answered {out:?}")))
}

/// The view, and the answer to an ask (none when the call asked nothing).
fn decode(out: &[String]) -> Result<(Option<Answer>, View), LimiterError> {
    let v = |i: usize| number(out, VIEW_AT + i);
    let view = View {
        now: number(out, 0)?,
        lim: v(0)?,
        win: v(1)?,
        lsrc: v(2)?,
        lat: v(3)?,
        remaining: v(4)?,
        pause: v(5)?,
        n429: v(6)?,
        interval: v(7)?,
        demand: [v(8)?, v(9)?, v(10)?],
        host: String::new(),
    };
    match number(out, 1)? {
        0 => {
            let why = Why::from_code(number(out, 3)?);
            let answer = Answer::Wait {
                until: number(out, 2)?,
                why,
            };
            let host = out.get(VIEW_AT + VIEW_LEN).filter(|_| why == Why::Moved);
            let view = View {
                host: host.cloned().unwrap_or_default(),
                ..view
            };
            return Ok((Some(answer), view));
        }
        2 => return Ok((None, view)),
        _ => {}
    }
    let mut grants = Vec::new();
    let mut i = VIEW_AT + VIEW_LEN;
    while i + 4 < out.len() {
        grants.push(Grant {
            key: usize::try_from(number(out, i)?).unwrap_or(0),
            at: number(out, i + 1)?,
            seq: number(out, i + 2)?,
            oseq: number(out, i + 3)?,
            probe: number(out, i + 4)? == 1,
        });
        i += 5;
    }
    Ok((Some(Answer::Granted(grants, number(out, 2)?)), view))
}
