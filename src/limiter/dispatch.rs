//! One local line per group: the calls waiting on this replica, the slots the shared state
//! granted to this replica, and a task that asks for slots and hands each one, when due, to
//! the call first in line at that moment (so a `high` call that arrives later still goes
//! first). One backend call serves up to `batch_max` waiting calls.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use super::backend::{BucketRef, Origin};
use super::config::micros;
use super::policy::{Answer, Ask, HIGH, NORMAL, Obs, View, Why};
use super::{AcquireRequest, Inner, LimiterError, Permit, Priority};
use crate::close::ratelimit::RateLimitInfo;

use local::{Held, Local, Waiter, later};

pub(crate) type Reply = Result<Permit, LimiterError>;

pub(crate) struct Group {
    pub name: String,
    bucket: BucketRef,
    local: Mutex<Local>,
    wake: Notify,
    probe_poll: Duration,
}

/// Ids of waiting calls, unique across lines, as calls may move to another line.
static IDS: AtomicU64 = AtomicU64::new(0);

enum Step {
    Stop,
    Ask(Ask),
    Sleep(Option<Instant>),
    /// This group is served in `host`'s line: hand it the calls waiting here.
    Move(String, Vec<Waiter>),
}

impl Group {
    pub fn start(inner: &Arc<Inner>, bucket: BucketRef) -> Arc<Group> {
        let group = Arc::new(Group {
            name: bucket.group.clone(),
            bucket,
            local: Mutex::new(Local::default()),
            wake: Notify::new(),
            probe_poll: inner.config.probe_poll,
        });
        tokio::spawn(run(Arc::downgrade(inner), group.clone()));
        group
    }

    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Local> {
        match self.local.lock() {
            Ok(local) => local,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub async fn acquire(&self, inner: &Inner, req: AcquireRequest) -> Reply {
        let prio = req.priority as usize;
        let now = Instant::now();
        let id = IDS.fetch_add(1, Ordering::Relaxed);
        let rx = {
            let mut local = self.lock();
            if let Some(until) = local.paused_until.filter(|u| *u > now)
                && req.deadline.is_some_and(|d| d < until)
            {
                return Err(self.reject(LimiterError::Paused {
                    group: req.group.clone(),
                    retry_after: until - now,
                }));
            }
            if local.queue.len() >= inner.config.queue_bound {
                return Err(self.reject(LimiterError::QueueFull {
                    group: req.group.clone(),
                }));
            }
            if let Some(deadline) = req.deadline {
                let ready = local.estimate(now, prio, &req.caller);
                if ready > deadline {
                    return Err(self.reject(LimiterError::DeadlineUnreachable {
                        group: req.group.clone(),
                        retry_after: ready - now,
                    }));
                }
            }
            let (tx, rx) = oneshot::channel();
            let waiter = Waiter {
                group: req.group.clone(),
                prio,
                caller: req.caller.clone(),
                deadline: req.deadline,
                enqueued: now,
                tx,
            };
            local.queue.push(prio, &req.caller, id, waiter);
            self.gauge_depth(&local);
            rx
        };
        self.wake.notify_one();
        let mut leave = Leave {
            group: self,
            prio,
            caller: &req.caller,
            id,
            armed: true,
        };
        let reply = rx.await;
        leave.armed = false;
        reply.unwrap_or_else(|_| Err(LimiterError::Backend("limiter stopped".into())))
    }

    /// Calls that waited in the line of a group now served in this one, in their order.
    fn take_waiters(&self, waiters: Vec<Waiter>) {
        {
            let mut local = self.lock();
            for waiter in waiters {
                let id = IDS.fetch_add(1, Ordering::Relaxed);
                let (prio, caller) = (waiter.prio, waiter.caller.clone());
                local.queue.push(prio, &caller, id, waiter);
            }
            self.gauge_depth(&local);
        }
        self.wake.notify_one();
    }

    /// Serves this group in `host`'s line from now on, or (None) in its own again.
    pub fn move_to(&self, host: Option<String>) {
        self.lock().moved_to = host;
        self.wake.notify_one();
    }

    fn reject(&self, err: LimiterError) -> LimiterError {
        let reason = match &err {
            LimiterError::QueueFull { .. } => "queue_full",
            LimiterError::DeadlineUnreachable { .. } => "deadline",
            LimiterError::Paused { .. } => "paused",
            LimiterError::Backend(_) => "backend",
        };
        metrics::counter!("limiter_rejected_total", "group" => self.name.clone(), "reason" => reason)
            .increment(1);
        tracing::debug!(group = %self.name, reason, "limiter rejected call");
        err
    }

    pub async fn observe(&self, inner: &Inner, permit: &Permit, status: u16, info: &RateLimitInfo) {
        let now = Instant::now();
        let micros_of = |d: Option<Duration>| d.map_or(-1, micros);
        let (demand, ask) = {
            let mut local = self.lock();
            local.sent = local.sent.saturating_sub(1);
            if let Some(raw) = &info.raw_header {
                local.last_header = Some(raw.clone());
            }
            if status == 429 {
                let wait = info.wait_hint().unwrap_or(inner.config.default_pause);
                let until = now + wait;
                local.paused_until = Some(local.paused_until.map_or(until, |p| p.max(until)));
                local.gate = [local.paused_until; 3];
                // Slots granted before the 429 would meet the same answer.
                local.held.clear();
                local.throttled += 1;
                metrics::counter!("limiter_throttled_total", "group" => self.name.clone())
                    .increment(1);
                tracing::warn!(group = %self.name, wait_ms = wait.as_millis() as u64,
                    header = info.raw_header.as_deref().unwrap_or(""), "close answered 429, group paused");
            }
            // Waiting calls ride on this round trip: no extra backend call for them.
            let ask = local.ask(now, inner);
            if let Some(ask) = &ask {
                local.asking[ask.prio] += 1;
            }
            (local.demand(now), ask)
        };
        let obs = Obs {
            key: permit.key_index,
            seq: permit.seq,
            oseq: permit.oseq,
            probe: permit.probe,
            status: i64::from(status),
            limit: info.limit.map_or(0, |l| l.min(1 << 40) as i64),
            remaining: info.remaining.map_or(-1, |r| r.min(1 << 40) as i64),
            reset: micros_of(info.reset),
            window: micros_of(info.window),
            retry_after: micros_of(info.retry_after),
            org_typed: info.limit_type.as_deref() == Some("org"),
            rtt: micros(now - permit.issued),
            borrowed: permit.borrowed,
            alone: inner.sharing.alone(&self.name, now),
            replica: inner.config.replica_id.clone(),
            demand,
        };
        let reply = inner
            .backend
            .observe(&self.bucket, &obs, ask.as_ref(), permit.origin)
            .await;
        let prio = ask.as_ref().map(|a| a.prio);
        match reply {
            Some((view, Some(answer), origin)) => self.apply(answer, view, origin, prio),
            Some((view, None, _)) => {
                let mut local = self.lock();
                local.take_view(view);
                local.end_ask(prio);
            }
            None => self.lock().end_ask(prio),
        }
        if let Some((view, ..)) = &self.lock().view
            && view.lsrc == 2
        {
            metrics::gauge!("limiter_learned_limit", "group" => self.name.clone())
                .set(view.lim as f64);
        }
        self.wake.notify_one();
    }

    fn plan(&self, inner: &Arc<Inner>) -> Step {
        let now = Instant::now();
        let mut local = self.lock();
        if local.closed {
            return Step::Stop;
        }
        let expired = local
            .queue
            .drain_where(|w| w.tx.is_closed() || w.deadline.is_some_and(|d| d <= now));
        for waiter in expired {
            let err = LimiterError::DeadlineUnreachable {
                group: waiter.group.clone(),
                retry_after: local.estimate(now, Priority::Low as usize, &waiter.caller) - now,
            };
            let _ = waiter.tx.send(Err(self.reject(err)));
        }
        if let Some(until) = local.paused_until.filter(|p| *p > now) {
            let late = local
                .queue
                .drain_where(|w| w.deadline.is_some_and(|d| d < until));
            for waiter in late {
                let err = LimiterError::Paused {
                    group: waiter.group.clone(),
                    retry_after: until - now,
                };
                let _ = waiter.tx.send(Err(self.reject(err)));
            }
        }
        while local.held.front().is_some_and(|h| h.at <= now) {
            let Some(held) = local.held.pop_front() else {
                break;
            };
            self.hand_out(inner, &mut local, held, now);
        }
        if let Some(host) = local.moved_to.clone().filter(|_| local.held.is_empty()) {
            let waiters = local.queue.drain_where(|_| true);
            self.gauge_depth(&local);
            return Step::Move(host, waiters);
        }
        self.gauge_depth(&local);
        let ask = local.ask(now, inner);
        let defer = inner.config.ask_gap;
        let not_before = ask
            .as_ref()
            .and_then(|a| local.not_before(now, a.prio, defer));
        if let Some(ask) = ask.filter(|_| not_before.is_none()) {
            local.asking[ask.prio] += 1;
            return Step::Ask(ask);
        }
        let mut wake = local.held.front().map(|h| h.at);
        // A pause already over must not wake this task at once, again and again, while an
        // ask is under way.
        let need = local.queue.len() > local.held.len();
        let paused = local.paused_until.filter(|p| need && *p > now);
        for at in not_before.into_iter().chain(paused) {
            wake = Some(wake.map_or(at, |w| w.min(at)));
        }
        for deadline in local.queue.iter().filter_map(|w| w.deadline) {
            wake = Some(wake.map_or(deadline, |w| w.min(deadline)));
        }
        Step::Sleep(wake)
    }

    fn hand_out(&self, inner: &Arc<Inner>, local: &mut Local, held: Held, now: Instant) {
        while let Some((_, waiter)) = local.queue.pop() {
            let waited = now - waiter.enqueued;
            let permit = Permit {
                group: waiter.group.clone(),
                line: self.name.clone(),
                waited,
                key_index: held.grant.key,
                seq: held.grant.seq,
                oseq: held.grant.oseq,
                probe: held.grant.probe,
                borrowed: waiter.prio == HIGH && held.prio != HIGH,
                issued: now,
                origin: held.origin,
                release: Some(Arc::downgrade(inner)),
            };
            match waiter.tx.send(Ok(permit)) {
                Ok(()) => {
                    local.sent += 1;
                    local.last_sent = Some(now);
                    let prio = Priority::ALL[waiter.prio.min(2)].as_str();
                    metrics::histogram!("limiter_queue_wait_seconds", "group" => waiter.group.clone(),
                        "priority" => prio)
                    .record(waited.as_secs_f64());
                    let remaining = local.view.as_ref().map_or(0, |(v, ..)| v.remaining);
                    tracing::debug!(group = %waiter.group, line = %self.name, caller = %waiter.caller,
                        priority = prio, wait_ms = waited.as_millis() as u64, remaining, key = held.grant.key,
                        "limiter admitted call");
                    return;
                }
                // The call left just now: the slot goes to the next in line.
                Err(Ok(mut permit)) => permit.release = None,
                Err(Err(_)) => {}
            }
        }
    }

    /// Takes the answer to an ask at priority `prio` (None: an answer nobody asked for).
    fn apply(&self, answer: Answer, view: View, origin: Origin, prio: Option<usize>) {
        let now = Instant::now();
        let mut local = self.lock();
        local.end_ask(prio);
        let prio = prio.unwrap_or(0);
        match &answer {
            Answer::Granted(grants, retry) => {
                // Asking again at this priority or a lower one is in vain before `retry`.
                let gate = (*retry > 0).then(|| later(now, view.now, *retry));
                for g in &mut local.gate[prio..] {
                    *g = gate;
                }
                for grant in grants {
                    let held = Held {
                        at: later(now, view.now, grant.at),
                        grant: *grant,
                        origin,
                        prio,
                    };
                    local.held.push_back(held);
                }
                local.held.make_contiguous().sort_by_key(|h| h.at);
            }
            Answer::Wait { until, why } => {
                let mut at = later(now, view.now, *until);
                let mut from = prio;
                if *why == Why::Probe {
                    // The probe's answer reaches the shared state, not this replica: look again
                    // soon, five times as often for `high` calls, waiting or still to come (at
                    // 25 ms one waited 2.9 token intervals at 68 per second). Not for every
                    // call: the first window of two groups in one undeclared bucket then met
                    // a 429.
                    local.gate[HIGH] = Some(at.min(now + self.probe_poll / 5));
                    at = at.min(now + self.probe_poll);
                    from = NORMAL;
                }
                if *why == Why::Paused {
                    local.paused_until = Some(at);
                    from = 0;
                }
                if *why == Why::Moved && !view.host.is_empty() && view.host != self.name {
                    local.moved_to = Some(view.host.clone());
                }
                for g in &mut local.gate[from..] {
                    *g = Some(at);
                }
            }
        }
        local.take_view(view);
    }

    fn gauge_depth(&self, local: &Local) {
        for (prio, depth) in Priority::ALL.iter().zip(local.queue.depths()) {
            metrics::gauge!("limiter_queue_depth", "group" => self.name.clone(),
                "priority" => prio.as_str())
            .set(depth as f64);
        }
    }
}

/// Takes a cancelled call out of the line.
struct Leave<'a> {
    group: &'a Group,
    prio: usize,
    caller: &'a str,
    id: u64,
    armed: bool,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let removed = self
            .group
            .lock()
            .queue
            .remove(self.prio, self.caller, self.id);
        if removed {
            self.group.wake.notify_one();
        }
    }
}

async fn run(inner: Weak<Inner>, group: Arc<Group>) {
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        match group.plan(&strong) {
            Step::Stop => return,
            Step::Ask(ask) => {
                // Not awaited here: a more urgent call arriving meanwhile asks at once.
                let group = group.clone();
                tokio::spawn(async move {
                    let (answer, view, origin) = strong.backend.acquire(&group.bucket, &ask).await;
                    group.apply(answer, view, origin, Some(ask.prio));
                    group.wake.notify_one();
                });
            }
            Step::Move(host, waiters) => {
                strong.route(&group.name, &host);
                if !waiters.is_empty() {
                    strong.line(&host).take_waiters(waiters);
                }
                drop(strong);
                group.wake.notified().await;
            }
            Step::Sleep(until) => {
                drop(strong);
                match until {
                    Some(at) => {
                        tokio::select! {
                            _ = group.wake.notified() => {}
                            _ = tokio::time::sleep_until(at) => {}
                        }
                    }
                    None => group.wake.notified().await,
                }
            }
        }
    }
}

pub(crate) mod local;
#[cfg(test)]
mod tests;
