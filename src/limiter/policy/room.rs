//! The room a window offers a booking: kept for others that Close counts in the same
//! bucket (`reserve`, `room`), and kept for more urgent calls (`keep`). See
//! `docs/limiter.md`. Mirrored by `acquire.lua`.

use super::{Bucket, LOW, Params, eff};

/// Others (groups of ours that Close counts in the same bucket, other clients of the key)
/// will take again what they took in the previous window: what our answers showed, what
/// they took at the same pace after our last answer, and of the rest of the room nobody
/// seemed to use, the half (rounded up), as they may be growing into it as we are.
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
    let unseen = ((others.min(100_000) * after + seen - 1) / seen).min(spare);
    others + unseen + (spare - unseen + 1) / 2
}

/// The room of a window before Close's answers tell more: the limit less the margin and the
/// room kept for others, but never less than an eighth, so that every group keeps going.
pub(super) fn room(b: &Bucket, p: &Params) -> i64 {
    let full = eff(b.lim, p);
    (full - b.fres).max(full / 8).max(1)
}

/// Room a booking ahead at `prio` must leave free: the high reserve, more urgent calls
/// waiting on other replicas, and as many more urgent admissions as the previous window had
/// (an eighth of the room when there was none), in proportion to the time left in this one.
pub(super) fn keep(b: &Bucket, now: i64, stop: i64, prio: usize, d_hi: i64, p: &Params) -> i64 {
    let mut before = b.ph;
    if prio == LOW {
        before += b.pn;
    }
    if b.hist == 0 {
        before = eff(b.lim, p) / 8;
    }
    // Bounded so that the product stays exact in Lua's doubles.
    let before = before.clamp(0, 100_000);
    let left = (stop - now).clamp(0, b.win);
    let expected = if b.win > 0 {
        (before * left + b.win - 1) / b.win
    } else {
        0
    };
    p.reserve_high + d_hi + expected
}
