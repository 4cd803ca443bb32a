//! The learning half of the policy: what Close answered to one call updates the limit, the
//! window and the room left (see `docs/limiter.md`). Mirrored by `lua/observe.lua`.

use super::{
    Answer, Ask, Bucket, GroupState, Obs, Params, View, acquire, forget_expired, reserve, roll,
    room, room_now, sync_org, update_demand, view,
};

/// Learns from and reconciles with what Close answered to one call.
pub fn observe(g: &mut GroupState, now: i64, o: &Obs, p: &Params) -> View {
    update_demand(g, now, &o.replica, o.demand, p);
    for key in &mut g.keys {
        forget_expired(key, now);
    }
    let Some(key) = g.keys.get_mut(o.key) else {
        return view(g, now, p);
    };
    if o.probe {
        key.probe = 0;
    }
    if o.rtt >= 0 {
        key.rtt = if o.rtt > key.rtt {
            o.rtt
        } else {
            key.rtt - (key.rtt - o.rtt) / 8
        };
    }
    // Close's header states the limit the call came closest to, the key's or the
    // organization's, and only the legacy body says which. In a pool, a limit that is the
    // organization's and not this key's known one is the organization's: learned as the
    // key's, it tripled the key's limit and the organization answered 429. A key whose limit
    // is unknown learns it from any header, else it would never learn it.
    let org_typed = o.org_typed
        || g.org.as_ref().is_some_and(|org| {
            org.lim > 0 && key.lim > 0 && o.limit == org.lim && o.limit != key.lim
        });
    if org_typed && key.lsrc == 2 {
        // Close still counts the key as before: its limit stays learned.
        key.lexp = now + p.learned_ttl;
    }
    if o.limit > 0 && !org_typed {
        learn(key, now, o, p);
    } else if key.lim == 0 && o.status != 0 && o.remaining < 0 && o.reset < 0 {
        // Close sent no rate-limit header at all: assume the configured default.
        key.lim = p.default_limit;
        key.win = p.default_window;
        key.lsrc = 1;
    }
    if o.status == 429 {
        key.n429 += 1;
    }
    let org_learned = org_typed && o.limit > 0;
    sync_org(g, now, p);
    if !org_typed && let Some(org) = g.org.as_mut() {
        count_in_org(org, now, o, p);
    }
    let (target, seq) = match g.org.as_mut() {
        Some(org) if org_typed => {
            if org_learned {
                org.lsrc = 2;
                org.lim = o.limit;
                if o.window > 0 {
                    org.win = o.window;
                }
            }
            (org, o.oseq)
        }
        _ => (&mut g.keys[o.key], o.seq),
    };
    reconcile(target, now, o, seq, p);
    if o.status == 429 {
        let wait = if o.reset > 0 {
            o.reset
        } else if o.retry_after > 0 {
            o.retry_after
        } else {
            p.default_pause
        };
        // Close's answer wins over our estimate: this window ends when the pause does.
        target.pause = target.pause.max(now + wait);
        target.cap = target.cap.min(target.seq);
        target.end = target.pause;
        target.conf = i64::from(o.reset > 0);
    }
    if o.borrowed {
        let key = &mut g.keys[o.key];
        roll(key, now, p);
        key.nh += 1;
    }
    view(g, now, p)
}

/// `observe`, then `acquire` for the same replica: one round trip serves both.
pub fn observe_then_acquire(
    g: &mut GroupState,
    now: i64,
    o: &Obs,
    ask: Option<&Ask>,
    p: &Params,
) -> (View, Option<Answer>) {
    let view = observe(g, now, o, p);
    let Some(ask) = ask.filter(|a| a.n > 0) else {
        return (view, None);
    };
    let (answer, view) = acquire(g, now, ask, p);
    (view, Some(answer))
}

fn learn(key: &mut Bucket, now: i64, o: &Obs, p: &Params) {
    let was_learned = key.lsrc == 2;
    if !was_learned || key.lim != o.limit {
        key.lat = now;
    }
    key.lim = o.limit;
    key.lsrc = 2;
    key.lexp = now + p.learned_ttl;
    if o.window > 0 {
        key.win = o.window;
        return;
    }
    if o.reset > 0 {
        // Headers since 2023 give no window: the longest `reset` seen, in whole seconds.
        let secs = (o.reset + 999_999) / 1_000_000 * 1_000_000;
        key.win = if was_learned { key.win.max(secs) } else { secs };
        return;
    }
    if key.win == 0 {
        key.win = p.default_window;
    }
}

/// Close's count at a call's arrival, less our calls known to be in it, bounds what others
/// (other clients of the key, groups sharing the bucket, calls straddling windows) used:
/// `others <= cmax - nobs`, where `cmax` is the highest count Close reported in this window
/// and `nobs` our calls of this window whose answers came back. Calls that overtook each
/// other on the way to Close cancel out here, unlike a per-call estimate.
/// `seq` is the call's number in `b`'s sequence.
fn reconcile(b: &mut Bucket, now: i64, o: &Obs, seq: i64, p: &Params) {
    if b.lim == 0 {
        return;
    }
    if b.end != 0 || o.reset < 0 {
        roll(b, now, p);
    }
    if !o.alone {
        b.kin = b.kin.max(now + 2 * b.win);
    }
    if o.reset >= 0 {
        let end = now + o.reset;
        let half = b.win / 2;
        if b.end == 0 || end > b.end + half {
            // The first window, or the call landed in a later window than the one we
            // track: follow Close, counting this call as our first in it.
            b.end = end;
            b.conf = 1;
            b.base = seq - 1;
            b.cmax = 0;
            b.nobs = 0;
            b.omax = 0;
            b.tog = 0;
            b.nstr = 0;
            b.short = 0;
            b.cap = b.base + room(b, p);
        } else if end < b.end - half {
            // A late answer: of the previous window, it still tells what others took in it.
            if end >= b.end - b.win - half {
                previous(b, o, seq, p);
            }
            return;
        } else if b.conf == 0 || end < b.end {
            b.end = end;
            b.conf = 1;
        }
    }
    if o.remaining < 0 {
        return;
    }
    let limit = if o.limit > 0 { o.limit } else { b.lim };
    b.cmax = b.cmax.max(limit - o.remaining);
    b.tobs = now;
    // A call answered 429 was not counted by Close. A call admitted before this window
    // rolled that reached Close after its window did is not ours here: it took room of
    // this window outside `seq - base`, as others' calls do.
    if seq > b.base && o.status != 429 {
        b.nobs += 1;
    } else if seq > b.pbase && o.status != 429 {
        b.nstr += 1;
    }
    if b.cmax - b.nobs > b.omax {
        b.omax = b.cmax - b.nobs;
        b.tog = now;
    }
    recap(b, p);
}

/// Answers showed others took two or more calls (one could be ours still on its way) beyond
/// the room kept for them: in a window of which the previous one told nothing (a cold start,
/// or after idleness; two groups of ours in one bucket each start with the whole limit), or
/// in one whose reserve was too small (a client that appeared late in the previous window).
/// Not in the window others appear in after one without them: 429s are allowed there.
pub(super) fn crowded(b: &Bucket) -> bool {
    (b.hist == 0 || b.fres > 0) && b.omax - b.nstr >= b.fres + 2
}

fn recap(b: &mut Bucket, p: &Params) {
    let margin = b.lim * p.margin_pm / 1000;
    let others = (b.cmax - b.nobs).max(0);
    // Our straddlers count among others below (what Close counted beyond `nobs`), and take
    // from our room above.
    let mut room = (room_now(b, others, p) - b.nstr).min(b.lim - margin - others);
    // Others book from what Close says is left at the same moments as we do: each keeps
    // at most half of it outstanding. Not a client outside the gateway (no group of ours
    // may be counted here, and the window before was seen): what it will take at its pace
    // is left to it, and the rest is ours. Halved, the window after such a client appeared
    // fell short (48 of 51, at a fifth of the limit; misses in that sweep went from 16 to 8
    // of 50).
    if crowded(b) {
        let left = b.lim - margin - b.cmax;
        // What others will take before the end at the pace they had so far in this window
        // (a client outside the gateway does not halve), unless they took nothing for
        // twice that pace.
        let start = b.end - b.win;
        let gone = (b.tobs - start).clamp(b.win / 8, b.win).max(1);
        let ahead = (b.end - b.tobs).clamp(0, b.win);
        let gap = (b.tog - start).max(0) / b.omax.max(1);
        let theirs = if b.fres > 0 && b.tobs - b.tog <= 2 * gap {
            (b.omax.min(100_000) * ahead + gone - 1) / gone
        } else {
            0
        };
        let ours = if b.kin <= b.tobs && b.hist > 0 {
            left
        } else {
            left / 2
        };
        room = room.min(b.nobs + ours.min(left - theirs).max(0));
    }
    b.cap = b.base + room;
}

/// A late answer of the previous window completes what others are known to have taken in
/// it, hence the room kept for them in this one.
fn previous(b: &mut Bucket, o: &Obs, seq: i64, p: &Params) {
    if o.remaining < 0 || b.hist == 0 {
        return;
    }
    let limit = if o.limit > 0 { o.limit } else { b.lim };
    b.pcmax = b.pcmax.max(limit - o.remaining);
    b.ptobs = b.end - b.win;
    if seq > b.pbase && seq <= b.base && o.status != 429 {
        b.pnobs += 1;
    }
    b.fres = reserve(b, p);
    recap(b, p);
}

/// An answer that told of the key, not the organization: the call still counts in the
/// organization's window, as ours. Without it, our calls told of their keys were taken for
/// others' once the organization's count came, and the next window was kept for them (3 of
/// 24 in every other window, two processes sharing a pool of four keys).
fn count_in_org(org: &mut Bucket, now: i64, o: &Obs, p: &Params) {
    if org.lim == 0 || o.remaining < 0 || o.status == 429 {
        return;
    }
    roll(org, now, p);
    if o.oseq > org.base {
        org.nobs += 1;
    }
}
