//! One slot of a bucket for one ask: whether the window has room for it at this priority,
//! and when (`candidate`), and booking it (`commit`). See `docs/limiter.md`: pacing, booking
//! ahead, room kept for `high`. Mirrored by `lua/slot.lua`.

use super::learn::crowded;
use super::room::{keep, kept_last, kept_until};
use super::{Ask, Bucket, HIGH, LOW, NORMAL, Params, Why, roll, token};

pub(super) struct Slot {
    pub at: i64,
    /// End of the window's usable time, and the room left in it with this slot.
    pub stop: i64,
    pub rem: i64,
    pub probe: bool,
}

pub(super) fn candidate(
    b: &mut Bucket,
    now: i64,
    ask: &Ask,
    d_hi: i64,
    p: &Params,
) -> Result<Slot, (i64, Why)> {
    if b.pause > now {
        return Err((b.pause, Why::Paused));
    }
    if b.lim == 0 {
        if b.probe > now {
            return Err((b.probe, Why::Probe));
        }
        return Ok(Slot {
            at: now,
            stop: now,
            rem: 1,
            probe: true,
        });
    }
    roll(b, now, p);
    let rem = b.cap - b.seq;
    if rem <= 0 {
        let until = if crowded(b) {
            (now + token(b, p)).min(b.end)
        } else {
            b.end
        };
        return Err((until, Why::Full));
    }
    // A round trip longer than a quarter window is an outlier (or a permit held before
    // sending), not a reason to stop using the window.
    let guard = b.rtt.max(p.guard_min).min(b.win / 4);
    let stop = b.end - guard;
    let at = now.max(b.next[ask.prio]);
    if at >= stop {
        return Err((b.end, Why::Full));
    }
    let step = (stop - at) / rem;
    // In a window without history nothing is booked in the last two round trips before
    // `stop` (a quarter window at most): no answer to such a call comes back in time to show
    // calls of another group of ours that Close counts in the same bucket, booking the same
    // room meanwhile (in a first window 10 ms long, both groups booked all of it: 8 429s at
    // 16/s).
    if b.hist == 0 && stop - at < (2 * guard).min(b.win / 4) {
        if b.seq - b.base <= 1 {
            b.short = 1;
        }
        return Err((b.end, Why::Full));
    }
    if rem <= d_hi {
        // Calls of higher priority wait elsewhere for all that is left: look again after
        // they had two slots' time to take it.
        return Err(((now + 2 * step.max(1)).min(b.end), Why::Priority));
    }
    // Beyond the next few slots nobody books while the room may be shared with calls not
    // known yet: before the window's first answer told what others take in it, in a window
    // the previous one told nothing of (a cold start: a group that Close counts with
    // another must not book the whole window on a guess), while room is kept for others,
    // and while this window's answers show calls of others (once the window is crowded, one
    // pacing step and at most a token interval, about the time between two of our answers,
    // ahead: each group's half of what is left shrinks with every answer, and slots booked
    // under a larger half outlast it). A cap
    // lowered by later answers then stops grants before they are made, instead of leaving
    // slots already granted to meet 429s.
    let unsure = b.conf == 0 || b.hist == 0 || b.fres > 0 || b.cmax > b.nobs;
    let ahead = if crowded(b) {
        step.min(token(b, p))
    } else {
        p.horizon[ask.prio.max(NORMAL)] * step
    };
    if ask.prio == HIGH && unsure && at > now + ahead {
        return Err((at - ahead, Why::Pacing));
    }
    if ask.prio != HIGH {
        // Beyond them, `normal` and `low` book only room that more urgent calls are not
        // expected to need before the window ends.
        let short = rem - 1 < keep(b, now, stop, ask.prio, d_hi, p);
        if at > now + ahead && (unsure || short) {
            return Err((at - ahead, Why::Pacing));
        }
        // The room `high` calls are expected to need stays theirs as long as they may come,
        // and the last of it until the last half token interval before `stop`: a `high`
        // call that then finds none waits half an interval and the guard. (`normal` is only
        // kept from booking ahead.)
        let short_high = rem - 1 < keep(b, now, stop, NORMAL, d_hi, p);
        if short_high && now < kept_last(b, stop, p) {
            return Err((kept_until(b, stop, rem, NORMAL, d_hi, p), Why::Pacing));
        }
    }
    if at > now + ask.max_wait {
        return Err((at, Why::Full));
    }
    Ok(Slot {
        at,
        stop,
        rem,
        probe: false,
    })
}

pub(super) fn commit(b: &mut Bucket, slot: &Slot, now: i64, prio: usize, p: &Params) {
    b.seq += 1;
    if prio == HIGH {
        b.nh += 1;
    } else if prio == 1 {
        b.nn += 1;
    }
    if slot.probe {
        b.probe = now + p.probe_timeout;
        return;
    }
    // Lower priorities yield this slot: each pointer moves by its own share of the time
    // left, so the room left still fits before `stop`. `high` moves by a token interval
    // at most: a burst of `high` calls is still spread (answers in between reveal calls
    // Close counts with ours), but a `high` call never waits long for room kept for it.
    for q in prio..=LOW {
        let from = b.next[q].max(slot.at);
        if from < slot.stop {
            let mut step = (slot.stop - from) / slot.rem;
            if q == HIGH {
                step = step.min(token(b, p));
            }
            b.next[q] = from + step;
        }
    }
}
