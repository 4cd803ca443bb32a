//! The limiter through a real Redis (started per test) and a real three-master Redis Cluster:
//! replicas share the probe, pauses, priority and the room, with real time.

mod limiter_support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use close_gateway::close::ratelimit::RateLimitInfo;
use close_gateway::limiter::{
    AcquireRequest, LimitSource, Limiter, LimiterConfig, LimiterError, Priority, REGISTRY_EXCHANGE,
    state_version,
};
use tokio::time::Instant;

const GROUP: &str = "task.write";

fn config(i: usize) -> LimiterConfig {
    LimiterConfig {
        replica_id: format!("replica{i}"),
        ..LimiterConfig::default()
    }
}

async fn replicas(url: &str, n: usize) -> Vec<Limiter> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(Limiter::redis(config(i), url).await.expect("connect"));
    }
    out
}

fn req(priority: Priority) -> AcquireRequest {
    AcquireRequest {
        group: GROUP.into(),
        priority,
        caller: "test".into(),
        deadline: None,
    }
}

fn header(limit: u64, remaining: u64, reset: Duration) -> RateLimitInfo {
    RateLimitInfo {
        limit: Some(limit),
        remaining: Some(remaining),
        reset: Some(reset),
        ..RateLimitInfo::default()
    }
}

#[tokio::test]
async fn one_probe_across_replicas_until_the_first_header() {
    let redis = limiter_support::redis().await;
    let r = replicas(&redis.url, 2).await;
    let probe = r[0].acquire(req(Priority::Normal)).await.expect("probe");
    let answered = Arc::new(AtomicBool::new(false));
    let waiting = {
        let limiter = r[1].clone();
        let answered = answered.clone();
        tokio::spawn(async move {
            let permit = limiter.acquire(req(Priority::Normal)).await;
            (permit, answered.load(Ordering::SeqCst))
        })
    };
    // The second replica's call is in its line before the probe is answered.
    while r[1]
        .snapshot()
        .iter()
        .all(|s| s.group != GROUP || s.queue_local != [0, 1, 0])
    {
        tokio::task::yield_now().await;
    }
    answered.store(true, Ordering::SeqCst);
    r[0].observe(probe, 200, &header(50, 49, Duration::from_secs(1)))
        .await;
    let (permit, after_answer) = waiting.await.expect("task");
    permit.expect("permit");
    assert!(
        after_answer,
        "the second call went before the limit was known"
    );
    let snap = r[1].snapshot();
    let group = snap.iter().find(|s| s.group == GROUP).expect("group");
    assert_eq!(group.limit, 50);
    assert!(matches!(group.source, LimitSource::Learned { .. }));
}

/// A rolling update runs two versions side by side. The state another version keeps (here
/// one from before key names carried the version) is left alone: the script reads and writes
/// only keys named with its own version.
#[tokio::test]
async fn a_state_of_another_version_is_left_alone() {
    let redis = limiter_support::redis().await;
    let client = redis::Client::open(redis.url.as_str()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    // The pool of a single key: 16 hex digits of SHA-256 over no key ids.
    let old = format!("{{cgw:e3b0c44298fc1c14:{GROUP}}}:key");
    let fields = [("lim", "1000"), ("lsrc", "2"), ("win", "1000000")];
    let _: () = redis::cmd("HSET")
        .arg(&old)
        .arg(&fields)
        .query_async(&mut conn)
        .await
        .expect("hset");

    let r = replicas(&redis.url, 1).await;
    let probe = r[0].acquire(req(Priority::Normal)).await.expect("probe");
    r[0].observe(probe, 200, &header(50, 49, Duration::from_secs(1)))
        .await;

    let mut left: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(&old)
        .query_async(&mut conn)
        .await
        .expect("hgetall");
    left.sort();
    let untouched: Vec<(String, String)> = fields
        .iter()
        .map(|(f, v)| (f.to_string(), v.to_string()))
        .collect();
    assert_eq!(left, untouched);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .expect("keys");
    // The registry of windows (`peers.rs`) is versioned apart, by its own format.
    let ours = format!("{{cgw:{}:", close_gateway::limiter::state_version());
    let mut written: Vec<&String> = keys
        .iter()
        .filter(|k| **k != old && !k.starts_with("{cgw:peers:"))
        .collect();
    written.sort();
    assert!(!written.is_empty());
    assert!(written.iter().all(|k| k.starts_with(&ours)), "{written:?}");
}

#[tokio::test]
async fn a_429_on_one_replica_pauses_the_other() {
    let redis = limiter_support::redis().await;
    let r = replicas(&redis.url, 2).await;
    let probe = r[0].acquire(req(Priority::High)).await.expect("probe");
    r[0].observe(probe, 200, &header(50, 49, Duration::from_secs(1)))
        .await;
    let permit = r[0].acquire(req(Priority::High)).await.expect("permit");
    let mut throttled = header(50, 0, Duration::from_secs(5));
    throttled.retry_after = Some(Duration::from_secs(5));
    r[0].observe(permit, 429, &throttled).await;
    let err = r[1]
        .acquire(AcquireRequest {
            deadline: Some(Instant::now() + Duration::from_secs(1)),
            ..req(Priority::High)
        })
        .await
        .expect_err("paused");
    let LimiterError::Paused { retry_after, .. } = err else {
        panic!("{err:?}")
    };
    assert!(retry_after > Duration::from_secs(3) && retry_after <= Duration::from_secs(5));
    let snap = r[1].snapshot();
    let group = snap.iter().find(|s| s.group == GROUP).expect("group");
    assert_eq!(group.throttled, 1);
    assert!(group.paused_until.is_some());
}

#[tokio::test]
async fn high_on_one_replica_goes_before_low_on_another() {
    let redis = limiter_support::redis().await;
    let r = replicas(&redis.url, 2).await;
    // One call per window, and the probe used this one.
    let probe = r[0].acquire(req(Priority::High)).await.expect("probe");
    r[0].observe(probe, 200, &header(1, 0, Duration::from_millis(500)))
        .await;
    let low = {
        let limiter = r[0].clone();
        tokio::spawn(async move {
            let permit = limiter.acquire(req(Priority::Low)).await;
            (permit, Instant::now())
        })
    };
    while r[0]
        .snapshot()
        .iter()
        .all(|s| s.group != GROUP || s.queue_local != [0, 0, 1])
    {
        tokio::task::yield_now().await;
    }
    let high = r[1].acquire(req(Priority::High)).await.expect("high");
    let high_at = Instant::now();
    drop(high);
    let (low, low_at) = low.await.expect("task");
    low.expect("low");
    assert!(high_at < low_at);
}

#[tokio::test]
async fn three_replicas_share_the_limit_with_no_429() {
    let redis = limiter_support::redis().await;
    let started = std::time::Instant::now();
    let r = replicas(&redis.url, 3).await;
    let outcome = limiter_support::drive(
        &r,
        GROUP,
        20,
        Duration::from_secs(1),
        Duration::from_millis(450),
        80,
    )
    .await;
    assert_eq!(outcome.throttled, 0);
    // At most two Redis commands per upstream call (acquire and observe). Commands that
    // the script runs inside Redis count under their own names; the clients send only these.
    let client = redis::Client::open(redis.url.as_str()).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .expect("info");
    let mut commands = 0;
    for line in stats.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        if !["cmdstat_evalsha", "cmdstat_eval", "cmdstat_script|load"].contains(&name) {
            continue;
        }
        let calls = rest.split(',').find_map(|kv| kv.strip_prefix("calls="));
        commands += calls.and_then(|c| c.parse::<u64>().ok()).expect("calls");
    }
    // Besides, each replica exchanges its windows with the others' (`REGISTRY_EXCHANGE`
    // apart, and once for a group new to it), while it gets answers.
    let exchanges = started.elapsed().as_millis() / REGISTRY_EXCHANGE.as_millis();
    let registry = 3 * (2 + exchanges as u64);
    assert!(
        commands <= 2 * 80 + registry,
        "{commands} commands for 80 calls and at most {registry} exchanges"
    );
}

#[tokio::test]
async fn losing_redis_falls_back_to_a_local_share() {
    let mut redis = limiter_support::redis().await;
    let limiter = Limiter::redis(
        LimiterConfig {
            fallback_replicas: 2,
            ..config(0)
        },
        &redis.url,
    )
    .await
    .expect("connect");
    let probe = limiter.acquire(req(Priority::High)).await.expect("probe");
    limiter
        .observe(probe, 200, &header(40, 39, Duration::from_secs(1)))
        .await;
    redis.stop().await;
    // Served from the local share (20 of 40) without Redis.
    for _ in 0..5 {
        let permit = limiter
            .acquire(req(Priority::High))
            .await
            .expect("fallback permit");
        limiter
            .observe(permit, 200, &header(40, 30, Duration::from_millis(500)))
            .await;
    }
}

#[tokio::test]
async fn three_replicas_on_a_three_master_cluster() {
    let cluster = limiter_support::cluster().await;
    let mut r = Vec::new();
    for i in 0..3 {
        r.push(
            Limiter::redis_cluster(config(i), &cluster.seeds)
                .await
                .expect("connect"),
        );
    }
    // Groups hash to different slots, so several masters serve the script.
    let (a, b) = tokio::join!(
        limiter_support::drive(
            &r,
            "lead.write",
            20,
            Duration::from_secs(1),
            Duration::from_millis(300),
            60
        ),
        limiter_support::drive(
            &r,
            "task.write",
            10,
            Duration::from_secs(1),
            Duration::from_millis(700),
            30
        ),
    );
    assert_eq!((a.throttled, b.throttled), (0, 0));
    // Every replica published its windows in the registry, one hash on one master.
    let mut published = BTreeSet::new();
    let mut holders = 0;
    for seed in &cluster.seeds {
        let client = redis::Client::open(seed.as_str()).expect("node url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("node connection");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("{cgw:peers:*")
            .query_async(&mut conn)
            .await
            .expect("keys");
        for key in keys {
            holders += 1;
            let fields: Vec<String> = redis::cmd("HKEYS")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .expect("hkeys");
            for field in fields {
                // "<replica>\n<slot>\n<state>\n<group>": the state is the state's version.
                let parts: Vec<&str> = field.split('\n').collect();
                assert_eq!(parts.get(2), Some(&state_version()), "{field:?}");
                let (replica, group) = (parts.first(), parts.get(3));
                published.insert((replica.map(|r| r.to_string()), group.map(|g| g.to_string())));
            }
        }
    }
    assert_eq!(holders, 1);
    let want: BTreeSet<(Option<String>, Option<String>)> = (0..3)
        .flat_map(|i| ["lead.write", "task.write"].map(|g| (i, g)))
        .map(|(i, g)| (Some(format!("replica{i}")), Some(g.to_owned())))
        .collect();
    assert_eq!(published, want);
}
