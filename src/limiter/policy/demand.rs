//! What replicas report of their waiting calls, and the line of asks: when the group is busy,
//! each replica is told a different time to ask again, `ask_gap` token intervals after the
//! previous one, so that one script call books the slots of every call that arrived
//! meanwhile, instead of every replica asking per call, or all at the same instant and all
//! but one in vain. Mirrored by `lua/shared.lua`.

use super::{Ask, CALLERS, GroupState, HIGH, NORMAL, Params, Why, eff};

pub(super) fn update_demand(
    g: &mut GroupState,
    now: i64,
    replica: &str,
    counts: [i64; 4],
    p: &Params,
) {
    g.demand.retain(|_, d| d.exp > now);
    if counts[..CALLERS].iter().all(|&d| d == 0) {
        g.demand.remove(replica);
        return;
    }
    // Waiting calls usually wait for the next window: keep them counted until it opens.
    let mut until = now;
    for key in &g.keys {
        until = until.max(key.end);
    }
    let entry = g.demand.entry(replica.to_owned()).or_default();
    entry.counts = counts;
    entry.exp = until + p.demand_ttl;
}

pub(super) fn higher_demand(g: &GroupState, replica: &str, prio: usize) -> i64 {
    let mut total = 0;
    for (name, d) in &g.demand {
        if name == replica {
            continue;
        }
        total += d.counts[..prio].iter().sum::<i64>();
    }
    total
}

/// How many slots `ask` may book. At `normal`, while other replicas have calls waiting at
/// it, its share of what one ask may book ahead (the horizon), in proportion to the callers
/// waiting here, and at least one: each replica's asks then take turns slot by slot. Else
/// the replica whose answers came back asked first (its observations carry its asks) and
/// booked the whole horizon each time, and one replica was served for about a window while
/// the others' calls, come as early, waited (docs/limiter.md, "Turns between replicas").
/// Shared by callers, not calls, so that callers on different replicas get a fair share as
/// on one: by calls, a caller with 20 calls beside one with 320 on another replica had its
/// last call admitted 169th to 191st; by callers, 44th to 97th (tests/limiter_turns.rs).
pub(super) fn fair_share(g: &GroupState, ask: &Ask, p: &Params) -> i64 {
    // `high` is never held back; `low` is bulk, whose turns cost room where a client of
    // the key stops (docs/limiter.md).
    if ask.prio != NORMAL {
        return ask.n;
    }
    let mut others = 0;
    for (name, d) in &g.demand {
        if name != &ask.replica && d.counts[ask.prio] > 0 {
            others += d.counts[CALLERS].max(1);
        }
    }
    if others <= 0 {
        return ask.n;
    }
    let mine = ask.demand[CALLERS].clamp(1, 100_000);
    // Bounded so that the product stays exact in Lua's doubles.
    let share = p.horizon[ask.prio] * mine / (mine + others.min(100_000_000));
    ask.n.min(share.max(1))
}

/// The replica was served: its calls that got a slot wait no more (else other replicas
/// would keep yielding room to them until its next report). Once its turn has come, its
/// place in the line is used; served earlier (its observation carried the ask), it keeps
/// its place, so that the line moves no faster than the turns it gives.
pub(super) fn leave_line(g: &mut GroupState, now: i64, ask: &Ask, granted: i64) {
    let Some(d) = g.demand.get_mut(&ask.replica) else {
        return;
    };
    d.counts[ask.prio] = (d.counts[ask.prio] - granted).max(0);
    // No more callers than calls left: each weighs in the others' shares.
    d.counts[CALLERS] = d.counts[CALLERS].min(d.counts[NORMAL]);
    if ask.prio != HIGH && d.ticket <= now {
        d.ticket = 0;
    }
}

/// When `ask`'s replica should ask again, given that the room it wants is not free before
/// `until`. Alone in wanting room at its priority, it may ask then; otherwise it keeps its
/// place in the line of that priority, or takes the next. `high` asks, pauses and probes
/// are not lined up.
pub(super) fn next_ask(
    g: &mut GroupState,
    now: i64,
    ask: &Ask,
    until: i64,
    why: Why,
    p: &Params,
) -> i64 {
    let gap = gap(g, p);
    if ask.prio == HIGH || gap <= 0 || matches!(why, Why::Paused | Why::Probe | Why::Moved) {
        return until;
    }
    let others = g
        .demand
        .iter()
        .any(|(name, d)| name != &ask.replica && d.counts[ask.prio] > 0);
    if !others {
        return until;
    }
    let held = g.demand.get(&ask.replica).map_or(0, |d| d.ticket);
    if held > 0 && held + gap > now {
        return until.max(held);
    }
    let at = until.max(g.tick[ask.prio]).max(now);
    g.tick[ask.prio] = at + gap;
    if let Some(d) = g.demand.get_mut(&ask.replica) {
        d.ticket = at;
    }
    at
}

pub(super) fn gap(g: &GroupState, p: &Params) -> i64 {
    p.ask_gap * interval(g, p)
}

/// The nominal time between two admissions of the group, as `view` computes it.
fn interval(g: &GroupState, p: &Params) -> i64 {
    let mut lim = 0;
    let mut win = 0;
    for key in &g.keys {
        lim += key.lim;
        win = win.max(key.win);
    }
    if let Some(org) = g.org.as_ref().filter(|o| o.lim > 0) {
        lim = lim.min(org.lim);
    }
    if lim <= 0 {
        return 0;
    }
    win / eff(lim, p)
}
