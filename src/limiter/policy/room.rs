//! The room a window offers a booking: kept for others that Close counts in the same
//! bucket (`reserve`, `room`), and kept for more urgent calls (`keep`). See
//! `docs/limiter.md`. Mirrored by `lua/slot.lua`.

use super::{Bucket, LOW, Params, eff, token};

/// Others (groups of ours that Close counts in the same bucket, other clients of the key)
/// will take again what they took in the previous window: what our answers showed, what
/// they took at the same pace after our last answer (for groups of ours, no more than the
/// room nobody used), and of the rest of that room the half (rounded up), as they may be
/// growing into it as we are.
pub(super) fn reserve(b: &Bucket, p: &Params) -> i64 {
    let others = (b.pcmax - b.pnobs).max(0);
    if others == 0 {
        return 0;
    }
    let end = b.end - b.win;
    let seen = (b.ptobs - (end - b.win)).clamp(b.win / 4, b.win).max(1);
    let after = (end - b.ptobs).clamp(0, b.win);
    let spare = (eff(b.lim, p) - b.pcmax).max(0);
    // Bounded so that the product stays exact in Lua's doubles.
    let mut unseen = (others.min(100_000) * after + seen - 1) / seen;
    // A group of ours in the bucket takes no more than the room nobody used: its calls came
    // in bursts when its cap held them back, and more than that starved both (115 to 222
    // windows below 95 % in the sweep of docs/limiter.md). Another client keeps its pace
    // even when the window was full: what Close counted of it misses the calls Close
    // refused it (1 or 2 429s of ours, windows after it appeared, in 9 of 50 runs).
    if b.kin >= end {
        unseen = unseen.min(spare);
    }
    others + unseen + ((spare - unseen).max(0) + 1) / 2
}

/// The room of a window before Close's answers tell more: the limit less the margin and the
/// room kept for others, but never less than an eighth, so that every group keeps going.
pub(super) fn room(b: &Bucket, p: &Params) -> i64 {
    let full = eff(b.lim, p);
    (full - b.fres).max(full / 8).max(1)
}

/// The room of the current window once answers came. Others are expected to take again
/// what they took in the previous window (`fres`), at the same pace.
///
/// Once they stopped taking more (no growth for six times their pace), what they took is
/// all that is kept: one of our groups whose backlog ran out mid-window left its share of
/// the rest unused (34 of 42 in the benchmark's last window). Shorter, two groups of ours
/// in one bucket, whose calls come in bursts when a cap held them back, were taken for
/// stopped: 429s. Another client (no group of ours may be counted here) is stopped after
/// twice its pace, counted from the window's start while it took nothing in it: it
/// skipped a whole step (22 of 24 where the benchmark's client stopped, 23 after it).
///
/// Before that, while others may be groups of ours (`kin`), all of it is kept: their calls
/// may come late (keeping only their pace for the time left cost 429s in every other
/// window there). When no group of ours may be counted in this bucket, others are another
/// client, whose calls keep their pace: what they took and their pace for the time left is
/// kept, so that a client that stops early in a window leaves the rest of it to us (20 of
/// 24 in the benchmark's window where the client stops, 23 with this). The same holds
/// while answers show that others took nothing in this window (they stopped before it, or
/// start late).
pub(super) fn room_now(b: &Bucket, others: i64, p: &Params) -> i64 {
    if b.fres == 0 || b.win <= 0 {
        return room(b, p);
    }
    let full = eff(b.lim, p);
    let pace = b.win / b.fres;
    let client = b.tobs >= b.kin;
    let quiet = if client { 2 * pace } else { 6 * pace };
    let since = if others > 0 { b.tog } else { b.end - b.win };
    if (others > 0 || client) && b.tobs - since > quiet {
        return (full - b.fres.min(others)).max(full / 8).max(1);
    }
    if others > 0 && b.tobs < b.kin {
        return room(b, p);
    }
    let left = (b.end - b.tobs).clamp(0, b.win);
    // Bounded so that the product stays exact in Lua's doubles.
    let rest = (b.fres.min(100_000) * left + b.win - 1) / b.win;
    // Our straddlers are among `others`; they come out of our room already.
    let theirs = (others - b.nstr).max(0);
    let mut most = b.fres;
    // The window before filled early: Close refused some of another client's calls there
    // and counted fewer than it sends, so its reserve may be a call short of its pace (one
    // 429 of ours after the window it appeared in, 16 of 229 runs of the sweep). Its count
    // so far, scaled to the window, may then raise the bound. Not in every window: a count
    // a call ahead of the pace by phase, scaled, kept a call a client stopping never took.
    if client && (b.end - b.win) - b.ptobs > b.win / 8 {
        let gone = (b.tobs - (b.end - b.win)).max(b.win * 3 / 4);
        most = most.max((theirs.min(100_000) * b.win + gone - 1) / gone);
    }
    let kept = most.min(theirs + rest);
    (full - kept).max(full / 8).max(1)
}

/// Room a booking ahead at `prio` must leave free: the high reserve, more urgent calls
/// waiting on other replicas, and as many more urgent admissions as the previous window had
/// (an eighth of the room when there was none), in proportion to the time left in this one.
pub(super) fn keep(b: &Bucket, now: i64, stop: i64, prio: usize, d_hi: i64, p: &Params) -> i64 {
    let before = expected_before(b, prio, p);
    let left = (stop - now).clamp(0, b.win);
    let expected = if b.win > 0 {
        (before * left + b.win - 1) / b.win
    } else {
        0
    };
    p.reserve_high + d_hi + expected
}

/// More urgent admissions a window is expected to have: as many as the previous one had,
/// an eighth of the room when there was none.
fn expected_before(b: &Bucket, prio: usize, p: &Params) -> i64 {
    let mut before = b.ph;
    if prio == LOW {
        before += b.pn;
    }
    if b.hist == 0 {
        before = eff(b.lim, p) / 8;
    }
    // Bounded so that the products stay exact in Lua's doubles.
    before.clamp(0, 100_000)
}

/// When `keep` will have shrunk enough for a booking at `prio` to leave it free, with `rem`
/// slots left; `kept_last` at the latest.
pub(super) fn kept_until(
    b: &Bucket,
    stop: i64,
    rem: i64,
    prio: usize,
    d_hi: i64,
    p: &Params,
) -> i64 {
    let last = kept_last(b, stop, p);
    let before = expected_before(b, prio, p);
    // `keep` falls to `rem - 1` once `before * left / win` is at most `free`.
    let free = rem - 1 - p.reserve_high - d_hi;
    if free < 0 || before <= 0 {
        return last;
    }
    // Bounded so that the product stays exact in Lua's doubles.
    let free = free.min(100_000);
    (stop - free * b.win / before).min(last)
}

/// From when the last of the room kept for more urgent calls goes to anyone: half a token
/// interval before `stop`. A `high` call that then finds none waits for the next window,
/// half an interval and the guard away.
pub(super) fn kept_last(b: &Bucket, stop: i64, p: &Params) -> i64 {
    stop - token(b, p) / 2
}
