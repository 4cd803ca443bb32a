//! The limiter script (`lua/*.lua`) against a real Redis: the script and `policy.rs` must
//! take the same decisions on the same steps. The script's clock is given per call so that
//! both run on the same instants.

use std::collections::HashSet;
use std::net::TcpListener;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::backend::BucketRef;
use super::config::LimiterConfig;
use super::policy::{self, Answer, Ask, Bucket, GroupState, Obs};
use super::redis::RedisBackend;

struct Server {
    _child: Child,
    url: String,
}

async fn redis_server() -> Server {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server installed");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = lines.next_line().await.expect("redis-server output") {
        if line.contains("Ready to accept connections") {
            // Keep draining so that redis-server never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return Server {
                _child: child,
                url: format!("redis://127.0.0.1:{port}/"),
            };
        }
    }
    panic!("redis-server exited before it was ready");
}

/// A tiny deterministic generator, so a failing step can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Runs one generated sequence; returns the kinds of answers seen: probes (0), grants (1) and
/// waits (10 + `Why`).
/// `alone`: every answer says no other group of ours is counted in the bucket, as beside a
/// client outside the gateway (otherwise a third do).
async fn conformance(keys: usize, seed: u64, alone: bool) -> HashSet<i64> {
    let server = redis_server().await;
    let mut config = LimiterConfig {
        // Shorter than a sequence: limits expire and are learned again within one.
        learned_ttl: std::time::Duration::from_secs(5),
        ..LimiterConfig::default()
    };
    if keys > 1 {
        let names: Vec<String> = (0..keys).map(|i| format!("key{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        config = config.with_api_keys(&names);
    }
    let redis = RedisBackend::single(&server.url, &config)
        .await
        .expect("connect");
    let bucket = BucketRef::new(&config.pool_id(), "lead.write", &config);
    let mut state = GroupState {
        keys: vec![Bucket::default(); bucket.keys.len()],
        org: bucket.org.then(Bucket::default),
        ..GroupState::default()
    };
    let p = &bucket.params;
    let mut rng = Lcg(seed);
    let mut now: i64 = 1_700_000_000_000_000;
    let mut outstanding = Vec::new();
    let limit = [5, 16, 40][rng.next(3) as usize];
    let mut seen = HashSet::new();
    for step in 0..400 {
        now += rng.next(80_000) as i64;
        let replica = format!("r{}", rng.next(3));
        // Callers at `normal` need not match the calls: the share is theirs alone.
        let demand = [
            rng.next(3) as i64,
            rng.next(2) as i64,
            rng.next(4) as i64,
            step % 4,
        ];
        if rng.next(25) == 0 {
            join_step(&redis, &bucket, &mut state, now, rng.next(4)).await;
            continue;
        }
        if outstanding.is_empty() || rng.next(2) == 0 {
            let ask = Ask {
                prio: rng.next(3) as usize,
                n: 1 + rng.next(5) as i64,
                max_wait: [i64::MAX / 4, 50_000][rng.next(2) as usize],
                replica,
                demand,
            };
            let expect = policy::acquire(&mut state, now, &ask, p);
            let got = redis
                .eval_acquire(&bucket, &ask, Some(now))
                .await
                .expect("script");
            assert_eq!(got, expect, "seed {seed} step {step}: acquire {ask:?}");
            match got.0 {
                Answer::Granted(grants, _) => {
                    seen.insert(if grants.iter().any(|g| g.probe) { 0 } else { 1 });
                    outstanding.extend(grants);
                }
                Answer::Wait { why, .. } => {
                    seen.insert(10 + why as i64);
                }
            }
            continue;
        }
        let grant = outstanding.remove(rng.next(outstanding.len() as u64) as usize);
        // In a pool, some answers state the organization's limit, untyped.
        let limit = if keys > 1 && rng.next(5) == 0 {
            3 * limit
        } else {
            limit
        };
        let remaining = limit - 1 - rng.next(limit as u64) as i64;
        let status = if rng.next(12) == 0 { 429 } else { 200 };
        let headerless = rng.next(10) == 0;
        let obs = Obs {
            key: grant.key,
            seq: grant.seq,
            oseq: grant.oseq,
            probe: grant.probe,
            status,
            limit: if headerless { 0 } else { limit },
            remaining: if headerless { -1 } else { remaining },
            reset: if headerless {
                -1
            } else {
                rng.next(1_000_000) as i64
            },
            window: [-1, 1_000_000][rng.next(2) as usize],
            retry_after: [-1, 1_000_000][rng.next(2) as usize],
            org_typed: keys > 1 && rng.next(4) == 0,
            rtt: rng.next(20_000) as i64,
            borrowed: rng.next(5) == 0,
            alone: rng.next(3) == 0 || alone,
            replica,
            demand,
        };
        let ask = (rng.next(2) == 0).then(|| Ask {
            prio: rng.next(3) as usize,
            n: 1 + rng.next(3) as i64,
            max_wait: i64::MAX / 4,
            replica: obs.replica.clone(),
            demand,
        });
        let expect = policy::observe_then_acquire(&mut state, now, &obs, ask.as_ref(), p);
        let got = redis
            .eval_observe(&bucket, &obs, ask.as_ref(), Some(now))
            .await
            .expect("script");
        assert_eq!(
            got, expect,
            "seed {seed} step {step}: observe {obs:?} then {ask:?}"
        );
        if let Some(Answer::Granted(grants, _)) = got.1 {
            outstanding.extend(grants);
        }
    }
    seen
}

/// One of `policy/join.rs`'s steps, by `pick`: join (twice as likely), adopt, leave.
async fn join_step(
    redis: &RedisBackend,
    bucket: &BucketRef,
    state: &mut GroupState,
    now: i64,
    pick: u64,
) {
    match pick {
        0 | 1 => {
            let expect = policy::join(state, now, "activity.write");
            let got = redis.eval_join(bucket, "activity.write", Some(now)).await;
            assert_eq!(got, Ok(expect), "join at {now}");
        }
        2 => {
            let from = now + 500_000;
            policy::adopt(state, now, from);
            let got = redis
                .eval_adopt_or_leave(bucket, Some(from), Some(now))
                .await;
            assert_eq!(got, Ok(()), "adopt at {now}");
        }
        _ => {
            policy::leave(state, now);
            let got = redis.eval_adopt_or_leave(bucket, None, Some(now)).await;
            assert_eq!(got, Ok(()), "leave at {now}");
        }
    }
}

/// Seeds enough for every kind of answer to occur.
async fn conformance_all(keys: usize, seeds: std::ops::Range<u64>, kinds: &[i64], alone: bool) {
    let mut seen = HashSet::new();
    for seed in seeds {
        seen.extend(conformance(keys, seed, alone).await);
    }
    for kind in kinds {
        assert!(seen.contains(kind), "never saw {kind} in {seen:?}");
    }
}

#[tokio::test]
async fn script_matches_policy_with_one_key() {
    conformance_all(1, 1..5, &[0, 1, 11, 12, 13, 14, 15, 16], false).await;
}

#[tokio::test]
async fn script_matches_policy_beside_a_client_outside_the_gateway() {
    conformance_all(1, 9..13, &[0, 1, 11, 13, 14], true).await;
}

#[tokio::test]
async fn script_matches_policy_with_a_key_pool() {
    conformance_all(3, 5..9, &[0, 1, 11, 13, 14], false).await;
}

/// A pool whose keys learn unequal limits in one window: the organization's cap follows the
/// smallest at once, in the script as in the policy (3 x 6, less the four probes).
#[tokio::test]
async fn script_lowers_the_org_cap_to_a_smaller_key_limit() {
    let server = redis_server().await;
    let config = LimiterConfig::default().with_api_keys(&["k0", "k1", "k2", "k3"]);
    let redis = RedisBackend::single(&server.url, &config)
        .await
        .expect("connect");
    let bucket = BucketRef::new(&config.pool_id(), "lead.write", &config);
    let mut state = GroupState {
        keys: vec![Bucket::default(); 4],
        org: Some(Bucket::default()),
        ..GroupState::default()
    };
    let p = &bucket.params;
    let now: i64 = 1_700_000_000_000_000;
    let ask = |n| Ask {
        prio: 0,
        n,
        max_wait: i64::MAX / 4,
        replica: "r".into(),
        demand: [0; 4],
    };
    // One probe for the group until its answer; then one for each other key.
    let mut probes = Vec::new();
    for (at, n) in [(now, 4), (now + 1_000, 3)] {
        let expect = policy::acquire(&mut state, at, &ask(n), p);
        let got = redis.eval_acquire(&bucket, &ask(n), Some(at)).await;
        assert_eq!(got.as_ref(), Ok(&expect));
        let Answer::Granted(granted, _) = expect.0 else {
            panic!("{expect:?}")
        };
        for probe in granted {
            let limit = [10, 6, 10, 10][probe.key];
            let obs = Obs {
                key: probe.key,
                seq: probe.seq,
                oseq: probe.oseq,
                probe: probe.probe,
                status: 200,
                limit,
                remaining: limit - 1,
                reset: 900_000,
                window: 1_000_000,
                retry_after: -1,
                rtt: 1_000,
                replica: "r".into(),
                ..Obs::default()
            };
            let expect = policy::observe_then_acquire(&mut state, now + 1_000, &obs, None, p);
            let got = redis
                .eval_observe(&bucket, &obs, None, Some(now + 1_000))
                .await;
            assert_eq!(got.as_ref(), Ok(&expect));
            probes.push(probe);
        }
    }
    assert_eq!(
        probes.iter().map(|g| g.key).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    let expect = policy::acquire(&mut state, now + 2_000, &ask(100), p);
    let got = redis
        .eval_acquire(&bucket, &ask(100), Some(now + 2_000))
        .await;
    assert_eq!(got.as_ref(), Ok(&expect));
    let Answer::Granted(grants, _) = expect.0 else {
        panic!("{expect:?}")
    };
    assert_eq!(grants.len(), 14);
}

/// A Redis server and a backend on it with the default settings.
async fn default_backend() -> (Server, RedisBackend) {
    let server = redis_server().await;
    let redis = RedisBackend::single(&server.url, &LimiterConfig::default())
        .await
        .expect("redis backend");
    (server, redis)
}

/// The registry script (`lua/peers.lua`) and `peers::exchange_in` store, expire and answer
/// the same entries on the same generated steps.
#[tokio::test]
async fn peers_script_matches_the_in_process_registry() {
    use super::peers::{Entry, exchange_in, field, own, registry_key, ttl};

    let (server, redis) = default_backend().await;
    let mut registry = std::collections::HashMap::new();
    let mut rng = Lcg(7);
    let mut now = 1_000_000_000_i64;
    for step in 0..300 {
        now += rng.next(400_000) as i64;
        // "a" is a prefix of "ab": fields of one are not the other's own.
        let replica = ["a", "b", "ab"][rng.next(3) as usize];
        let entries: Vec<Entry> = (0..rng.next(4))
            .map(|_| Entry {
                field: field(
                    replica,
                    rng.next(2) as usize,
                    ["v1", "v2"][rng.next(2) as usize],
                    ["g", "h,i", "x\ny}", "{z} 1"][rng.next(4) as usize],
                ),
                limit: 10 + rng.next(3) as i64,
                end: rng.next(2_000_000) as i64 - 1_000_000,
                counts: (0..rng.next(4))
                    .map(|c| (c * 3 + 1).to_string())
                    .collect::<Vec<_>>()
                    .join("."),
            })
            .collect();
        let want = exchange_in(&mut registry, now, ttl(), &own(replica), &entries);
        let got = redis
            .eval_peers("pool", replica, &entries, Some(now))
            .await
            .expect("script answers");
        let pairs = |out: &[String]| {
            let mut p: Vec<(String, String)> = out[1..]
                .chunks_exact(2)
                .map(|c| (c[0].clone(), c[1].clone()))
                .collect();
            p.sort();
            (out[0].clone(), p)
        };
        assert_eq!(pairs(&got), pairs(&want), "step {step}");
    }
    assert!(!registry.is_empty());
    let client = redis::Client::open(server.url.as_str()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let pttl: i64 = redis::cmd("PTTL")
        .arg(registry_key("pool"))
        .query_async(&mut conn)
        .await
        .expect("pttl");
    assert!((1..=5_000).contains(&pttl), "{pttl}");
    // Every entry lives `ttl` from its last write.
    now += ttl();
    let got = redis.eval_peers("pool", "a", &[], Some(now)).await;
    assert_eq!(got, Ok(vec![now.to_string()]));
}

/// With Redis's own clock (`TIME`), an end travels as an offset in microseconds: what one
/// replica publishes 300 s ahead, another reads back 300 s ahead, less the time between the
/// two calls.
#[tokio::test]
async fn peers_script_keeps_ends_in_redis_clock() {
    use super::peers::{Entry, field};

    let (_server, redis) = default_backend().await;
    let entry = Entry {
        field: field("a", 0, "v1", "g"),
        limit: 40,
        end: 300_000_000,
        counts: "1.4".to_owned(),
    };
    let mine = redis.eval_peers("pool", "a", &[entry], None).await;
    assert_eq!(
        mine.map(|out| out.len()),
        Ok(1),
        "its own entry is not answered"
    );
    let out = redis
        .eval_peers("pool", "b", &[], None)
        .await
        .expect("script answers");
    assert_eq!(out.len(), 3, "{out:?}");
    assert_eq!(out[1], "a\n0\nv1\ng");
    let now: i64 = out[0].parse().expect("now");
    let value: Vec<i64> = out[2]
        .split(',')
        .take(3)
        .map(|v| v.parse().expect("number"))
        .collect();
    assert!(out[2].ends_with(",1.4"), "{out:?}");
    assert_eq!(value[1], 40);
    let ahead = value[2] - now;
    assert!((299_000_000..=300_000_000).contains(&ahead), "{ahead}");
    let lives = value[0] - now;
    assert!((1_000_000..=2_000_000).contains(&lives), "{lives}");
}
