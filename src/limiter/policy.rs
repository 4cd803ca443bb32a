//! The scheduling rules, pure: a group's shared state and the time in, a decision out.
//!
//! The Lua script (`lua/*.lua`) is a line-by-line translation of this file and of `policy/`
//! (same names, same integer arithmetic in microseconds); `script_tests.rs` runs both on the
//! same steps. Any change here must be made there too. The algorithm is explained in
//! `docs/limiter.md`.

use std::collections::HashMap;

/// Priority indices: lower is more urgent.
pub const HIGH: usize = 0;
pub const NORMAL: usize = 1;
pub const LOW: usize = 2;

/// Why an ask got no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Paused after a 429 until `until`.
    Paused = 1,
    /// The limit is unknown and another call is probing it.
    Probe = 2,
    /// The window's room is used; it reopens at `until`.
    Full = 3,
    /// Booking this far ahead would let this priority hold room a higher one may need.
    Pacing = 4,
    /// Higher-priority calls wait on other replicas for the little room left.
    Priority = 5,
    /// The group is served in another group's state from `until` on (`View::host`).
    Moved = 6,
}

impl Why {
    pub fn from_code(code: i64) -> Why {
        match code {
            1 => Why::Paused,
            2 => Why::Probe,
            4 => Why::Pacing,
            5 => Why::Priority,
            6 => Why::Moved,
            _ => Why::Full,
        }
    }
}

/// One bucket of Close (a key's group, or the organization's group). Times in microseconds
/// of the backend's clock; `lim == 0` means unknown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bucket {
    pub lim: i64,
    pub win: i64,
    /// 0 unknown, 1 assumed default (Close sent no header), 2 learned.
    pub lsrc: i64,
    pub lat: i64,
    pub lexp: i64,
    /// End of the current window (conservative: never before Close's).
    pub end: i64,
    /// Highest admission sequence number allowed in the current window.
    pub cap: i64,
    /// Admissions so far (monotonic).
    pub seq: i64,
    /// 1 once a header of the current window confirmed `end`.
    pub conf: i64,
    /// `seq` when the current window began; our calls of this window have `seq > base`.
    pub base: i64,
    /// Highest count Close reported in this window, and our answered calls in it.
    pub cmax: i64,
    pub nobs: i64,
    /// Pacing pointers per priority.
    pub next: [i64; 3],
    pub pause: i64,
    pub probe: i64,
    /// Upstream round trip estimate, used as the guard before a window's end.
    pub rtt: i64,
    pub n429: i64,
    /// `high` and `normal` admissions in this window and in the previous one: the room
    /// lower priorities leave free for them when booking ahead.
    pub nh: i64,
    pub nn: i64,
    pub ph: i64,
    pub pn: i64,
    /// 1 when the previous window was seen, so that `ph` and `pn` tell something.
    pub hist: i64,
    /// When the last answer of this window came back.
    pub tobs: i64,
    /// Room kept in this window for what others took in the previous one (see `reserve`),
    /// and that window's `cmax`, `nobs`, `base` and `tobs`, which late answers complete.
    pub fres: i64,
    pub pcmax: i64,
    pub pnobs: i64,
    pub pbase: i64,
    pub ptobs: i64,
    /// The most calls of others the answers of this window showed, and when that grew last:
    /// others that stopped growing for a while stopped (see `room_now`).
    pub omax: i64,
    pub tog: i64,
    /// Our calls admitted before this window began that Close counted in it: they took
    /// room of this window outside `seq - base`.
    pub nstr: i64,
    /// Until when an answer said a group of ours may be counted in this bucket too
    /// (`Obs::alone` false): till then, others may be ours (see `room_now`).
    pub kin: i64,
    /// From when this group is served in another group's state (see `join.rs`), 0 never.
    pub moved: i64,
    /// From when this state also serves a group that joined it: the window beginning then
    /// has no history, as what others took before were that group's calls.
    pub adopt: i64,
    /// 1 once the tail of this window, without history, was refused while no more than its
    /// first call had gone: too short to tell anything of others (see `roll`).
    pub short: i64,
}

/// A group's shared state: one bucket per API key, an optional organization bucket, the
/// demand each replica reported, and the next free time in the line of asks.
#[derive(Debug, Clone, Default)]
pub struct GroupState {
    pub keys: Vec<Bucket>,
    pub org: Option<Bucket>,
    pub demand: HashMap<String, Demand>,
    /// Per priority, the next time not yet given to a replica for its next ask (see
    /// `demand.rs`).
    pub tick: [i64; 3],
    /// The group this one is served with once `moved`.
    pub host: String,
}

/// Where a replica's report of waiting calls (per priority, `[high, normal, low, callers]`)
/// says how many callers those at `normal` come from: turns between replicas are shared by
/// callers (`demand::fair_share`).
pub const CALLERS: usize = 3;

/// What one replica reported: waiting calls per priority and callers (`CALLERS`), until when
/// they count, and its place in the line of asks (a time, 0 for none).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Demand {
    pub counts: [i64; 4],
    pub exp: i64,
    pub ticket: i64,
}

/// Tunables, all integers (microseconds, per mille).
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub margin_pm: i64,
    /// Divides the room: 1 normally, N replicas when Redis is lost.
    pub share: i64,
    pub guard_min: i64,
    /// How many pacing steps ahead normal and low may book (high: unbounded).
    pub horizon: [i64; 3],
    /// Slots at a window's end that lower priorities may take only when due.
    pub reserve_high: i64,
    pub probe_timeout: i64,
    pub learned_ttl: i64,
    pub default_limit: i64,
    pub default_window: i64,
    pub default_pause: i64,
    pub demand_ttl: i64,
    /// Organization limit; 0 derives it as `org_mult` × the smallest key limit.
    pub org_limit: i64,
    pub org_mult: i64,
    /// Token intervals between two asks of replicas told to wait (the line of asks).
    pub ask_gap: i64,
}

/// What one replica asks for.
#[derive(Debug, Clone)]
pub struct Ask {
    pub prio: usize,
    pub n: i64,
    pub max_wait: i64,
    pub replica: String,
    /// Waiting calls per priority, then callers at `normal` (`CALLERS`).
    pub demand: [i64; 4],
}

/// One slot granted: send at `at` with key `key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub key: usize,
    pub at: i64,
    pub seq: i64,
    /// The organization bucket's sequence number of this grant (0 without a pool).
    pub oseq: i64,
    pub probe: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Slots, and when fewer than the ask's share were free, the time to ask again (else 0).
    Granted(Vec<Grant>, i64),
    Wait {
        until: i64,
        why: Why,
    },
}

/// What Close said about one call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Obs {
    pub key: usize,
    pub seq: i64,
    /// `Grant::oseq` of the call.
    pub oseq: i64,
    pub probe: bool,
    /// 0 when the call's outcome is unknown (permit dropped).
    pub status: i64,
    pub limit: i64,
    /// -1 when absent, likewise below.
    pub remaining: i64,
    pub reset: i64,
    pub window: i64,
    pub retry_after: i64,
    pub org_typed: bool,
    pub rtt: i64,
    /// A `high` call used this permit, whose slot was booked at a lower priority: it counts
    /// among the window's `high` admissions (`keep` sizes the room kept for them by these).
    pub borrowed: bool,
    /// The replica knows no group of ours that may be counted in this bucket too: each
    /// group with the same limit and window was seen counted apart (see `sharing.rs`).
    pub alone: bool,
    pub replica: String,
    pub demand: [i64; 4],
}

/// The state summarised for snapshots and local estimates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct View {
    pub now: i64,
    pub lim: i64,
    pub win: i64,
    pub lsrc: i64,
    pub lat: i64,
    pub remaining: i64,
    pub pause: i64,
    pub n429: i64,
    /// Nominal time between two admissions.
    pub interval: i64,
    pub demand: [i64; 3],
    /// The group this one is served with, with `Why::Moved`.
    pub host: String,
}

/// Our calls of an adopted window's predecessor: more than any count, so that none of
/// them is taken for others'.
const ADOPTED: i64 = 1 << 40;

fn eff(lim: i64, p: &Params) -> i64 {
    let margin = lim * p.margin_pm / 1000;
    ((lim - margin) / p.share.max(1)).max(1)
}

/// The nominal time between two admissions of a bucket whose limit is known.
fn token(b: &Bucket, p: &Params) -> i64 {
    b.win / eff(b.lim, p)
}

fn forget_expired(b: &mut Bucket, now: i64) {
    if b.lsrc == 2 && now >= b.lexp {
        b.lim = 0;
        b.lsrc = 0;
    }
}

fn roll(b: &mut Bucket, now: i64, p: &Params) {
    if b.lim == 0 || now < b.end {
        return;
    }
    let next = now < b.end + b.win;
    let start = if next { b.end } else { now };
    b.end = start + b.win;
    // The others of the window before were the group served here from now on: none are
    // known, even once its late answers come (`previous`). So for two windows: its calls
    // admitted before the move may still reach Close in the first.
    let adopted = b.adopt > 0 && start >= b.adopt - b.win / 2;
    let first = adopted && start < b.adopt + b.win / 2;
    if adopted && !first {
        b.adopt = 0;
    }
    // After idleness the previous window tells nothing of the next; nor does one too short
    // for more than its first call (see `candidate`): both groups of a bucket Close shares
    // then start the next window alike, each on guard against the other.
    let known = next && b.short == 0;
    // A window without history (a cold start, or after idleness) began when its first
    // answer came, not with Close's: its more urgent calls are a part of a window's.
    let partial = known && b.hist == 0;
    b.hist = i64::from(known);
    b.ph = if known { b.nh } else { 0 };
    b.pn = if known { b.nn } else { 0 };
    if first || partial {
        // Expect as many more urgent calls as a window without history does (see
        // `expected_before`), or those seen if more: the part seen left the second window
        // of a cold start a `high` call short at 64/s (68 ms, 4.4 token intervals). After
        // a join, the more urgent calls of the group served here from now on come too;
        // ours alone left `high` calls of both groups waiting for the next window.
        let eighth = eff(b.lim, p) / 8;
        b.ph = b.ph.max(eighth);
        b.pn = b.pn.max(eighth);
    }
    b.nh = 0;
    b.nn = 0;
    b.pcmax = if known { b.cmax } else { 0 };
    // Our straddlers were ours, not others, in the window Close counted them in.
    b.pnobs = if known { b.nobs + b.nstr } else { 0 };
    if adopted {
        b.pcmax = 0;
        b.pnobs = ADOPTED;
    }
    b.pbase = b.base;
    b.ptobs = b.tobs;
    b.fres = reserve(b, p);
    b.cap = b.seq + room(b, p);
    b.conf = 0;
    b.base = b.seq;
    b.cmax = 0;
    b.nobs = 0;
    b.omax = 0;
    b.tog = 0;
    b.nstr = 0;
    b.short = 0;
}

/// Books up to `ask.n` slots (its share at `normal` while other replicas wait, `fair_share`)
/// on the key with the earliest room, within the organization cap.
pub fn acquire(g: &mut GroupState, now: i64, ask: &Ask, p: &Params) -> (Answer, View) {
    update_demand(g, now, &ask.replica, ask.demand, p);
    let d_hi = higher_demand(g, &ask.replica, ask.prio);
    let n = demand::fair_share(g, ask, p);
    for key in &mut g.keys {
        forget_expired(key, now);
    }
    sync_org(g, now, p);
    let mut grants = Vec::new();
    let mut wait = (i64::MAX, Why::Full);
    let moved = g.keys.first().map_or(0, |k| k.moved);
    if moved > 0 && now >= moved {
        wait = (moved, Why::Moved);
    }
    while wait.1 != Why::Moved && (grants.len() as i64) < n {
        let probing = pool_probing(g, now);
        let mut best: Option<(usize, Slot)> = None;
        for (i, key) in g.keys.iter_mut().enumerate() {
            if let Some(until) = probing {
                if until < wait.0 {
                    wait = (until, Why::Probe);
                }
                continue;
            }
            match candidate(key, now, ask, d_hi, p) {
                Ok(slot) => {
                    // A key that does not know the limit yet probes first: the sooner each
                    // key knows, the sooner the pool runs at its full rate.
                    let sooner =
                        |b: &Slot| slot.at < b.at || (slot.at == b.at && slot.probe && !b.probe);
                    if best.as_ref().is_none_or(|(_, b)| sooner(b)) {
                        best = Some((i, slot));
                    }
                }
                Err(w) => {
                    if w.0 < wait.0 {
                        wait = w;
                    }
                }
            }
        }
        let Some((i, slot)) = best else {
            break;
        };
        if moved > 0 && slot.at >= moved {
            wait = (moved, Why::Moved);
            break;
        }
        if let Some(org) = g.org.as_mut() {
            if org.lim > 0 {
                roll(org, now, p);
                if org.pause > now {
                    wait = (org.pause, Why::Paused);
                    break;
                }
                if org.cap - org.seq <= 0 {
                    wait = (org.end, Why::Full);
                    break;
                }
            }
            org.seq += 1;
        }
        let key = &mut g.keys[i];
        commit(key, &slot, now, ask.prio, p);
        grants.push(Grant {
            key: i,
            at: slot.at,
            seq: key.seq,
            oseq: g.org.as_ref().map_or(0, |o| o.seq),
            probe: slot.probe,
        });
    }
    if grants.is_empty() {
        let until = if wait.0 == i64::MAX { now } else { wait.0 };
        let until = demand::next_ask(g, now, ask, until, wait.1, p);
        let mut v = view(g, now, p);
        if wait.1 == Why::Moved {
            v.host = g.host.clone();
        }
        return (Answer::Wait { until, why: wait.1 }, v);
    }
    demand::leave_line(g, now, ask, grants.len() as i64);
    // Fewer slots than its share: the rest are not free before `wait.0`.
    let mut retry = 0;
    if (grants.len() as i64) < n && wait.0 != i64::MAX {
        retry = demand::next_ask(g, now, ask, wait.0, wait.1, p);
    }
    (Answer::Granted(grants, retry), view(g, now, p))
}

pub(super) fn view(g: &GroupState, now: i64, p: &Params) -> View {
    let mut v = View {
        now,
        ..View::default()
    };
    for key in &g.keys {
        v.lim += key.lim;
        v.win = v.win.max(key.win);
        v.lsrc = if v.lsrc == 0 {
            key.lsrc
        } else {
            v.lsrc.min(key.lsrc)
        };
        v.lat = v.lat.max(key.lat);
        v.remaining += remaining(key, now, p);
        v.pause = v.pause.max(key.pause);
        v.n429 += key.n429;
    }
    if let Some(org) = g.org.as_ref().filter(|o| o.lim > 0) {
        v.lim = v.lim.min(org.lim);
        v.remaining = v.remaining.min(remaining(org, now, p));
        v.pause = v.pause.max(org.pause);
    }
    if v.lim > 0 {
        v.interval = v.win / eff(v.lim, p);
    }
    for d in g.demand.values() {
        for (total, count) in v.demand.iter_mut().zip(&d.counts) {
            *total += count;
        }
    }
    v
}

fn remaining(b: &Bucket, now: i64, p: &Params) -> i64 {
    if b.lim == 0 {
        return 0;
    }
    if now >= b.end {
        return eff(b.lim, p);
    }
    (b.cap - b.seq).max(0)
}

mod demand;
mod join;
mod learn;
mod pool;
mod room;
mod slot;

use demand::{higher_demand, update_demand};
use room::{reserve, room, room_now};
use slot::{Slot, candidate, commit};

pub use join::{adopt, join, leave};
#[cfg(test)]
use learn::observe;
pub use learn::observe_then_acquire;
use pool::{pool_probing, sync_org};

#[cfg(test)]
mod tests;
