//! Two groups of ours that Close counts in one bucket, served as one once a replica suspects
//! it (`sharing.rs`): the guest `join`s the host at the end of its current window, from when
//! its state grants no slot and answers `Why::Moved`, so that every replica moves its calls
//! to the host's state before that window ends; the host `adopt`s the guest from the same
//! time. A collision of counts later proves them apart: the guest `leave`s. See
//! `docs/limiter.md`, "Suspected shared buckets". Mirrored by the ops in `lua/observe.lua`.

use super::{Bucket, GroupState, forget_expired};

/// Marks `g` as served in `host`'s state from the end of its current window (now when
/// idle) and returns that time; 0 when it was moved already (by another replica, which
/// also made the host adopt it), or when Close counted no calls of others with `g`'s.
pub fn join(g: &mut GroupState, now: i64, host: &str) -> i64 {
    forget(g, now);
    if g.keys.first().is_some_and(|k| k.moved > 0) {
        return 0;
    }
    // In one bucket with the host, the host's calls are others here. Counts that never
    // collide are no proof alone: two groups counted apart with the same limit and pace
    // were suspected in 36 of 207 runs of a simulation, and serving them as one cost both
    // half their room and 429s when they parted.
    if !g.keys.iter().any(shows_others) {
        return 0;
    }
    // 0 means never: a clock starting at 0 (tests) must still move the group.
    let from = g.keys.iter().map(|k| k.end).fold(now.max(1), i64::max);
    for key in &mut g.keys {
        key.moved = from;
    }
    g.host = host.to_owned();
    from
}

/// Whether Close counted calls of others with ours in this window or the one before: an
/// eighth of the limit, and at least two (one may be ours still on its way).
fn shows_others(b: &Bucket) -> bool {
    let others = (b.omax - b.nstr).max(b.pcmax - b.pnobs);
    others >= (b.lim / 8).max(2)
}

/// Makes the window of `g` that begins at `from` (or soonest after) one without history.
pub fn adopt(g: &mut GroupState, now: i64, from: i64) {
    forget(g, now);
    for key in &mut g.keys {
        adopt_bucket(key, from);
    }
}

fn adopt_bucket(b: &mut Bucket, from: i64) {
    if b.adopt == 0 || from < b.adopt {
        b.adopt = from;
    }
}

/// Serves `g` in its own state again.
pub fn leave(g: &mut GroupState, now: i64) {
    forget(g, now);
    for key in &mut g.keys {
        key.moved = 0;
    }
    g.host.clear();
}

/// As every step of the script, which loads the keys so.
fn forget(g: &mut GroupState, now: i64) {
    for key in &mut g.keys {
        forget_expired(key, now);
    }
}
