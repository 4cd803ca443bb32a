//! The load driver: runs a plan's calls at their times and records each call's outcome and
//! latency; and the gateway side of it, a tonic connection per caller spread over the
//! replicas.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tonic::transport::Endpoint;

use super::error::BenchError;
use super::ops::{self, CallMeta, Clients, Group, Priority};
use super::workload::{Job, Plan};

/// How a call ended, as its caller saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// A gRPC code, an HTTP status or a transport failure, as a short label.
    Failed(String),
}

/// One call of the plan.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub group: Group,
    pub priority: Priority,
    pub issued: Instant,
    pub done: Instant,
    pub outcome: Outcome,
}

impl CallRecord {
    pub fn latency(&self) -> Duration {
        self.done.saturating_duration_since(self.issued)
    }
}

/// Runs every job at `t0 + job.at` through `call`, concurrently, and returns a record per
/// job; calls still running `guard` after the last job's time are aborted and recorded as
/// `unfinished`.
pub async fn run_jobs<F, Fut>(
    jobs: &[Job],
    t0: Instant,
    guard: Duration,
    call: F,
) -> Vec<CallRecord>
where
    F: Fn(Job) -> Fut,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let mut set = JoinSet::new();
    for (index, job) in jobs.iter().enumerate() {
        let at = job.at;
        let fut = call(job.clone());
        set.spawn(async move {
            tokio::time::sleep_until(t0 + at).await;
            let issued = Instant::now();
            let outcome = fut.await;
            (index, issued, Instant::now(), outcome)
        });
    }
    let mut ended: Vec<Option<(Instant, Instant, Outcome)>> = vec![None; jobs.len()];
    let last = jobs.iter().map(|j| j.at).max().unwrap_or_default();
    let stop = t0 + last + guard;
    loop {
        match tokio::time::timeout_at(stop, set.join_next()).await {
            Ok(Some(Ok((index, issued, done, outcome)))) => {
                if let Some(slot) = ended.get_mut(index) {
                    *slot = Some((issued, done, outcome));
                }
            }
            Ok(Some(Err(error))) => tracing::warn!(%error, "bench call task failed"),
            Ok(None) => break,
            Err(_) => {
                tracing::warn!(left = set.len(), "bench calls still running at the guard");
                break;
            }
        }
    }
    set.abort_all();
    let now = Instant::now();
    let unfinished = || (t0, now, Outcome::Failed("unfinished".to_owned()));
    jobs.iter()
        .zip(ended)
        .map(|(job, ended)| {
            let (issued, done, outcome) = ended.unwrap_or_else(unfinished);
            CallRecord {
                group: job.group,
                priority: job.priority,
                issued,
                done,
                outcome,
            }
        })
        .collect()
}

/// One connection per caller, caller `i` to replica `i % replicas`, connected before the
/// burst so that connecting is not timed.
pub async fn connect_callers(
    callers: usize,
    replicas: &[SocketAddr],
) -> Result<Vec<Clients>, BenchError> {
    let mut out = Vec::with_capacity(callers);
    for i in 0..callers {
        let Some(addr) = replicas.get(i % replicas.len().max(1)) else {
            return Err(BenchError::Connect {
                addr: "-".to_owned(),
                detail: "no replica".to_owned(),
            });
        };
        let fail = |detail: String| BenchError::Connect {
            addr: addr.to_string(),
            detail,
        };
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| fail(e.to_string()))?
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| fail(e.to_string()))?;
        out.push(Clients::new(channel));
    }
    Ok(out)
}

/// Runs the plan through the gateway replicas.
pub async fn drive_gateway(
    plan: &Plan,
    clients: &[Clients],
    t0: Instant,
    timeout: Duration,
) -> Vec<CallRecord> {
    let guard = timeout + Duration::from_secs(5);
    run_jobs(&plan.jobs, t0, guard, |job| {
        let clients = clients.get(job.caller).cloned();
        let meta = CallMeta {
            caller: format!("bench-{:02}", job.caller),
            priority: job.priority,
            timeout,
        };
        async move {
            let Some(mut clients) = clients else {
                return Outcome::Failed("no connection".to_owned());
            };
            match ops::grpc_call(&mut clients, job.group, job.seq, &meta).await {
                Ok(()) => Outcome::Ok,
                Err(status) => Outcome::Failed(format!("{:?}", status.code())),
            }
        }
    })
    .await
}
