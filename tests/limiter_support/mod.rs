//! Shared by the limiter tests: real Redis servers (one, or a three-master cluster, on free
//! ports, stopped when dropped) and a tiny simulated Close bucket with a load driver.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use close_gateway::close::ratelimit::RateLimitInfo;
use close_gateway::limiter::{AcquireRequest, Limiter, Priority};
use tokio::time::Instant;

use tokio::io::{AsyncBufReadExt, BufReader};

pub mod mix;
pub mod pair;
pub mod rollout;
pub mod sim;
use tokio::process::{Child, Command};

pub struct RedisServer {
    child: Child,
    pub port: u16,
    pub url: String,
}

impl RedisServer {
    /// Stops the server now (to test losing Redis).
    pub async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A free port whose cluster bus port (the port + 10000) is free and valid too.
fn free_cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port <= 55535 && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
}

/// Starts redis-server on a port from `pick`; another process may take a free port before
/// redis-server binds it, so a server that exits before it is ready is tried again on
/// another port.
async fn start_on(pick: fn() -> u16, extra: impl Fn(u16) -> Vec<String>) -> (Child, u16) {
    for _ in 0..5 {
        let port = pick();
        let args = extra(port);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        if let Some(child) = start(port, &args).await {
            return (child, port);
        }
    }
    panic!("redis-server exited before it was ready on five ports in a row");
}

async fn start(port: u16, extra: &[&str]) -> Option<Child> {
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
        .args(extra)
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
            return Some(child);
        }
    }
    None
}

/// One Redis server on a free port.
pub async fn redis() -> RedisServer {
    let (child, port) = start_on(free_port, |_| Vec::new()).await;
    RedisServer {
        child,
        port,
        url: format!("redis://127.0.0.1:{port}/"),
    }
}

pub struct RedisCluster {
    _nodes: Vec<Child>,
    dir: PathBuf,
    pub seeds: Vec<String>,
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Three masters, slots spread by `redis-cli --cluster create`, ready when every node says
/// `cluster_state:ok`.
pub async fn cluster() -> RedisCluster {
    let dir = std::env::temp_dir().join(format!("cgw-cluster-{}", rand_suffix()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let dir_arg = dir.to_string_lossy().into_owned();
    let mut nodes = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..3 {
        let (node, port) = start_on(free_cluster_port, |port| {
            let conf = format!("nodes-{port}.conf");
            [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &conf,
                "--dir",
                &dir_arg,
            ]
            .map(str::to_owned)
            .to_vec()
        })
        .await;
        nodes.push(node);
        addrs.push(format!("127.0.0.1:{port}"));
    }
    let status = Command::new("redis-cli")
        .arg("--cluster")
        .arg("create")
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdout(Stdio::null())
        .status()
        .await
        .expect("redis-cli installed");
    assert!(status.success(), "redis-cli --cluster create failed");
    for addr in &addrs {
        let client = redis::Client::open(format!("redis://{addr}/")).expect("url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("node");
        // Gossip settles in a few rounds; each CLUSTER INFO is one event to wait on.
        loop {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async(&mut conn)
                .await
                .expect("info");
            if info.contains("cluster_state:ok") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    RedisCluster {
        _nodes: nodes,
        dir,
        seeds: addrs.iter().map(|a| format!("redis://{a}/")).collect(),
    }
}

fn rand_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{}-{nanos}", std::process::id())
}

/// Close's bucket: fixed windows of `window` starting at `origin`.
pub struct Close {
    pub limit: u64,
    pub window: Duration,
    pub origin: Instant,
    pub twists: Twists,
    /// Per window index: accepted, rejected.
    pub counts: Mutex<BTreeMap<u64, (u64, u64)>>,
}

/// Changes of Close's behaviour during a run; window indices count from the window holding
/// the start (0).
#[derive(Debug, Clone, Copy, Default)]
pub struct Twists {
    /// From this window on, the limit is lower.
    pub lowered: Option<(u64, u64)>,
    /// From this window on, another client of the key takes this many calls at each window's
    /// start, outside the gateway.
    pub other_client: Option<(u64, u64)>,
}

impl Close {
    pub fn handle(&self, now: Instant) -> (u16, RateLimitInfo) {
        let since = now - self.origin;
        let index = (since.as_nanos() / self.window.as_nanos()) as u64;
        let end = self.origin + self.window * (index as u32 + 1);
        let reset = end - now;
        let mut limit = self.limit;
        if let Some((from, lower)) = self.twists.lowered
            && index >= from
        {
            limit = lower;
        }
        let mut counts = self.counts.lock().expect("counts");
        let entry = counts
            .entry(index)
            .or_insert_with(|| match self.twists.other_client {
                Some((from, taken)) if index >= from => (taken, 0),
                _ => (0, 0),
            });
        let mut info = RateLimitInfo {
            limit: Some(limit),
            reset: Some(reset),
            ..RateLimitInfo::default()
        };
        if entry.0 >= limit {
            entry.1 += 1;
            info.remaining = Some(0);
            info.retry_after = Some(Duration::from_secs(reset.as_secs() + 1));
            return (429, info);
        }
        entry.0 += 1;
        info.remaining = Some(limit - entry.0);
        (200, info)
    }

    /// The index of the window holding `now`.
    pub fn window_index(&self, now: Instant) -> u64 {
        ((now - self.origin).as_nanos() / self.window.as_nanos()) as u64
    }

    pub fn window_start(&self, index: u64) -> Instant {
        self.origin + self.window * index as u32
    }
}

pub struct Outcome {
    pub throttled: u64,
    /// Per window index: accepted (including another client's), rejected.
    pub windows: BTreeMap<u64, (u64, u64)>,
    /// Accepted per full window while a backlog existed.
    pub full_windows: Vec<u64>,
    pub drain: Duration,
}

/// 64 callers spread over `replicas` send `calls` calls of `group` through the limiter to
/// a simulated Close with fixed windows `phase` out of step with the start; a 429 is retried.
pub async fn drive(
    replicas: &[Limiter],
    group: &str,
    limit: u64,
    window: Duration,
    phase: Duration,
    calls: usize,
) -> Outcome {
    drive_with(
        replicas,
        group,
        limit,
        window,
        phase,
        calls,
        Twists::default(),
    )
    .await
}

/// [`drive`] with Close changing its behaviour during the run.
pub async fn drive_with(
    replicas: &[Limiter],
    group: &str,
    limit: u64,
    window: Duration,
    phase: Duration,
    calls: usize,
    twists: Twists,
) -> Outcome {
    let start = Instant::now();
    let close = Arc::new(Close {
        limit,
        window,
        origin: start - phase,
        twists,
        counts: Mutex::new(BTreeMap::new()),
    });
    let last_admitted = Arc::new(Mutex::new(start));
    let mut callers = Vec::new();
    for c in 0..64 {
        let limiter = replicas[c % replicas.len()].clone();
        let group = group.to_owned();
        let close = close.clone();
        let last_admitted = last_admitted.clone();
        let priority = Priority::ALL[c % 3];
        let per_caller = calls / 64 + usize::from(c < calls % 64);
        callers.push(tokio::spawn(async move {
            for k in 0..per_caller {
                loop {
                    let req = AcquireRequest {
                        group: group.clone(),
                        priority,
                        caller: format!("caller{c}"),
                        deadline: None,
                    };
                    let permit = limiter.acquire(req).await.expect("no deadline, no error");
                    {
                        let mut last = last_admitted.lock().expect("last");
                        *last = (*last).max(Instant::now());
                    }
                    let jitter = ((c + k) % 3) as u64;
                    tokio::time::sleep(Duration::from_millis(1 + jitter)).await;
                    let (status, info) = close.handle(Instant::now());
                    tokio::time::sleep(Duration::from_millis(1 + jitter % 2)).await;
                    limiter.observe(permit, status, &info).await;
                    if status != 429 {
                        break;
                    }
                }
            }
        }));
    }
    for caller in callers {
        caller.await.expect("caller");
    }
    let drain = Instant::now() - start;
    let last_admitted = *last_admitted.lock().expect("last");
    let counts = close.counts.lock().expect("counts");
    let mut outcome = Outcome {
        throttled: counts.values().map(|c| c.1).sum(),
        windows: counts.clone(),
        full_windows: Vec::new(),
        drain,
    };
    for (&index, &(accepted, _)) in counts.iter() {
        let begins = close.window_start(index);
        if begins >= start && begins + window <= last_admitted {
            outcome.full_windows.push(accepted);
        }
    }
    outcome
}
