//! A simulated Close with several buckets, and a closed-loop load of mixed groups,
//! priorities and replicas, as the three-process test drives the real gateway: each worker
//! takes the next call of a shared list and waits for its answer before the next.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use close_gateway::limiter::{AcquireRequest, Limiter, Priority};
use tokio::time::Instant;

use super::{Close, Twists};

/// One call of the load: its group, priority and the replica it is sent to.
#[derive(Debug, Clone)]
pub struct Call {
    pub group: String,
    pub priority: Priority,
    pub replica: usize,
}

/// Close's buckets and which bucket each group's calls count in.
pub struct Buckets {
    pub buckets: BTreeMap<String, Close>,
    pub of_group: HashMap<String, String>,
}

impl Buckets {
    pub fn new() -> Buckets {
        Buckets {
            buckets: BTreeMap::new(),
            of_group: HashMap::new(),
        }
    }

    /// A bucket of `limit` per `window`, whose windows began `phase` before `start`, counting
    /// the calls of `groups`.
    pub fn bucket(
        mut self,
        name: &str,
        groups: &[&str],
        (limit, window, phase): (u64, Duration, Duration),
        start: Instant,
        twists: Twists,
    ) -> Buckets {
        let close = Close {
            limit,
            window,
            origin: start - phase,
            twists,
            counts: Mutex::new(BTreeMap::new()),
        };
        self.buckets.insert(name.to_owned(), close);
        for group in groups {
            self.of_group.insert((*group).to_owned(), name.to_owned());
        }
        self
    }
}

impl Default for Buckets {
    fn default() -> Self {
        Self::new()
    }
}

/// What happened per bucket.
#[derive(Debug, Default)]
pub struct BucketOutcome {
    /// Per window index: accepted (including another client's), rejected.
    pub windows: BTreeMap<u64, (u64, u64)>,
    /// Accepted per full window while this bucket's calls had a backlog.
    pub full_windows: Vec<u64>,
    /// Answers (any status) per group of this bucket.
    pub answered: BTreeMap<String, u64>,
    /// Per group, per window index: calls Close accepted.
    pub accepted: BTreeMap<String, BTreeMap<u64, u64>>,
}

#[derive(Debug, Default)]
pub struct MixOutcome {
    pub buckets: BTreeMap<String, BucketOutcome>,
    pub drain: Duration,
    /// Upstream calls sent (429s included).
    pub sent: u64,
}

/// Runs `calls` with `workers` closed-loop workers over `replicas`; a 429 is retried.
pub async fn drive_mix(
    replicas: &[Limiter],
    close: Arc<Buckets>,
    calls: Vec<Call>,
    workers: usize,
) -> MixOutcome {
    let start = Instant::now();
    let calls = Arc::new(calls);
    let next = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let last_admitted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let answered: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let accepted: Arc<Mutex<BTreeMap<String, BTreeMap<u64, u64>>>> = Arc::default();
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let (calls, next, close) = (calls.clone(), next.clone(), close.clone());
        let (sent, last_admitted, answered) =
            (sent.clone(), last_admitted.clone(), answered.clone());
        let accepted = accepted.clone();
        let replicas = replicas.to_vec();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(call) = calls.get(i) else {
                    return;
                };
                let limiter = &replicas[call.replica % replicas.len()];
                let bucket = &close.buckets[&close.of_group[&call.group]];
                loop {
                    let req = AcquireRequest {
                        group: call.group.clone(),
                        priority: call.priority,
                        caller: format!("worker{}", worker % 6),
                        deadline: None,
                    };
                    let permit = limiter.acquire(req).await.expect("no deadline, no error");
                    let bucket_name = close.of_group[&call.group].clone();
                    last_admitted
                        .lock()
                        .expect("last")
                        .insert(bucket_name, Instant::now());
                    sent.fetch_add(1, Ordering::SeqCst);
                    let jitter = ((worker + i) % 3) as u64;
                    tokio::time::sleep(Duration::from_millis(1 + jitter)).await;
                    let (status, info) = bucket.handle(Instant::now());
                    if status != 429 {
                        let index = bucket.window_index(Instant::now());
                        let mut accepted = accepted.lock().expect("accepted");
                        let group = accepted.entry(call.group.clone()).or_default();
                        *group.entry(index).or_default() += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(1 + jitter % 2)).await;
                    *answered
                        .lock()
                        .expect("answered")
                        .entry(call.group.clone())
                        .or_default() += 1;
                    limiter.observe(permit, status, &info).await;
                    if status != 429 {
                        break;
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("worker");
    }
    let mut outcome = MixOutcome {
        drain: Instant::now() - start,
        sent: sent.load(Ordering::SeqCst) as u64,
        ..MixOutcome::default()
    };
    let last_admitted = last_admitted.lock().expect("last");
    let answered = answered.lock().expect("answered");
    let accepted = accepted.lock().expect("accepted");
    for (name, bucket) in &close.buckets {
        let counts = bucket.counts.lock().expect("counts").clone();
        let mut out = BucketOutcome::default();
        let last = last_admitted.get(name).copied().unwrap_or(start);
        for (&index, &(accepted, _)) in &counts {
            let begins = bucket.window_start(index);
            if begins >= start && begins + bucket.window <= last {
                out.full_windows.push(accepted);
            }
        }
        out.windows = counts;
        for (group, n) in answered.iter() {
            if close.of_group.get(group) == Some(name) {
                out.answered.insert(group.clone(), *n);
                let windows = accepted.get(group).cloned().unwrap_or_default();
                out.accepted.insert(group.clone(), windows);
            }
        }
        outcome.buckets.insert(name.clone(), out);
    }
    outcome
}
