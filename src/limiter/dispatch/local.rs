//! The state of one group's line on this replica: waiting calls, slots held for them, and
//! when to ask the shared state for more.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::Reply;
use crate::limiter::Inner;
use crate::limiter::backend::Origin;
use crate::limiter::config::micros;
use crate::limiter::policy::{Ask, CALLERS, Grant, HIGH, NORMAL, View};
use crate::limiter::queue::Queue;

pub(crate) struct Waiter {
    /// The call's own group: this line may serve a group that joined it (`join.rs`).
    pub group: String,
    pub prio: usize,
    pub caller: String,
    pub deadline: Option<Instant>,
    pub enqueued: Instant,
    pub tx: oneshot::Sender<Reply>,
}

pub(crate) struct Held {
    pub at: Instant,
    pub grant: Grant,
    pub origin: Origin,
    /// The priority it was asked at.
    pub prio: usize,
}

#[derive(Default)]
pub(crate) struct Local {
    pub queue: Queue<Waiter>,
    pub held: VecDeque<Held>,
    /// Per priority, the time before which asking the shared state would be in vain.
    pub gate: [Option<Instant>; 3],
    pub paused_until: Option<Instant>,
    /// Last state seen, with the local instant and wall time it was taken at.
    pub view: Option<(View, Instant, SystemTime)>,
    pub last_header: Option<String>,
    pub throttled: u64,
    pub closed: bool,
    /// Backend calls asking for slots under way, per priority: one at a time, but a more
    /// urgent call does not wait for the round trip of a less urgent ask.
    pub asking: [u32; 3],
    /// Permits handed out and not yet observed (a dropped permit is never observed, hence
    /// also the time of the last), so an observation, which carries an ask, is expected.
    pub sent: usize,
    pub last_sent: Option<Instant>,
    /// The group whose line serves this one's calls from now on (`policy/join.rs`).
    pub moved_to: Option<String>,
}

pub(crate) fn later(now: Instant, from: i64, to: i64) -> Instant {
    now + Duration::from_micros(u64::try_from(to - from).unwrap_or(0))
}

impl Local {
    /// What to ask the shared state for: slots for the most urgent waiting calls that no
    /// held slot covers. `None` when nothing is needed or an ask is under way.
    pub fn ask(&self, now: Instant, inner: &Inner) -> Option<Ask> {
        let paused = self.paused_until.is_some_and(|p| p > now);
        if paused || self.moved_to.is_some() {
            return None;
        }
        // Held slots serve the most urgent calls first: ask at the priority of the most
        // urgent call they leave uncovered, not at that of a call already served.
        let demand = self.demand(now);
        let prio = demand[..CALLERS].iter().position(|&d| d > 0)?;
        if self.asking[..=prio].iter().any(|&n| n > 0) {
            return None;
        }
        let mut max_wait = 0;
        for waiter in self.queue.iter() {
            max_wait = match waiter.deadline {
                Some(d) => max_wait.max(micros(d.saturating_duration_since(now))),
                None => i64::MAX / 4,
            };
            if max_wait == i64::MAX / 4 {
                break;
            }
        }
        Some(Ask {
            prio,
            n: demand[prio].min(i64::from(inner.config.batch_max.max(1))),
            max_wait,
            replica: inner.config.replica_id.clone(),
            demand,
        })
    }

    /// When a new call of `caller` at `prio` would get room, as far as this replica knows.
    pub fn estimate(&self, now: Instant, prio: usize, caller: &str) -> Instant {
        let start = self.paused_until.map_or(now, |p| p.max(now));
        let ahead = self.queue.ahead_of_new(prio, caller);
        if let Some(held) = self.held.get(ahead) {
            return held.at.max(start);
        }
        let Some((view, ..)) = self.view.as_ref().filter(|(v, ..)| v.interval > 0) else {
            return start;
        };
        let from = self.held.back().map_or(start, |h| h.at.max(start));
        let slots = (ahead + 1 - self.held.len()) as u64;
        from + Duration::from_micros(view.interval as u64 * slots)
    }

    /// When a standalone ask at `prio` may go (`None`: now). Not while the shared state said
    /// it would be in vain; and for normal and low calls, not while an observation of this
    /// group is due soon (a held slot falls due, or a permit is out), since it will carry
    /// the ask, with every call that arrived meanwhile, at no extra round trip. A permit
    /// dropped unobserved holds asks back for `defer` token intervals at most.
    pub fn not_before(&self, now: Instant, prio: usize, defer: u32) -> Option<Instant> {
        if let Some(gate) = self.gate[prio].filter(|g| *g > now) {
            return Some(gate);
        }
        let interval = self.view.as_ref().map_or(0, |(v, ..)| v.interval.max(0));
        if prio == HIGH || interval == 0 {
            return None;
        }
        let slack = Duration::from_micros(interval as u64 * u64::from(defer));
        let mut expected = self.held.front().map(|h| h.at);
        if let Some(sent) = self.last_sent.filter(|_| self.sent > 0) {
            expected = Some(expected.map_or(sent, |e| e.min(sent)));
        }
        expected.map(|e| e + slack).filter(|t| *t > now)
    }

    /// Waiting calls per priority that no held slot covers yet, and the callers of those at
    /// `normal` (`CALLERS`). A `high` call is covered only by a slot asked for at `high` or
    /// due within a token interval: a slot booked further ahead for the bulk would make it
    /// wait, so it asks for its own.
    pub fn demand(&self, now: Instant) -> [i64; 4] {
        let interval = self.view.as_ref().map_or(0, |(v, ..)| v.interval.max(0));
        let soon = now + Duration::from_micros(interval as u64);
        let mut spare = self.held.len();
        let mut demand = [0; 4];
        for (prio, (d, depth)) in demand.iter_mut().zip(self.queue.depths()).enumerate() {
            let usable = if prio == HIGH {
                let usable = |h: &&Held| h.at <= soon || h.prio == HIGH;
                self.held.iter().filter(usable).count()
            } else {
                spare
            };
            let covered = depth.min(usable);
            spare -= covered;
            *d = (depth - covered) as i64;
        }
        demand[CALLERS] = (self.queue.callers(NORMAL) as i64).min(demand[NORMAL]);
        demand
    }

    /// An ask at `prio` came back.
    pub fn end_ask(&mut self, prio: Option<usize>) {
        if let Some(n) = prio.and_then(|p| self.asking.get_mut(p)) {
            *n = n.saturating_sub(1);
        }
    }

    pub fn take_view(&mut self, view: View) {
        let now = Instant::now();
        if view.pause > view.now {
            let until = later(now, view.now, view.pause);
            self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
        }
        self.view = Some((view, now, SystemTime::now()));
    }
}
