//! Two groups of ours that Close counts in one bucket, served as one once a replica suspects
//! it (`sharing.rs`): the guest `join`s the host at the end of its current window, from when
//! its state grants no slot and answers `Why::Moved`, so that every replica moves its calls
//! to the host's state before that window ends; the host `adopt`s the guest from the same
//! time. A collision of counts later proves them apart: the guest `leave`s. See
//! `docs/limiter.md`, "Suspected shared buckets". Mirrored by the ops in `lua/observe.lua`.

use super::{Bucket, GroupState, forget_expired};

/// Marks `g` as served in `host`'s state from the end of its current window (now when
/// idle) and returns that time; 0 when it was moved already (by another replica, which
/// also made the host adopt it).
pub fn join(g: &mut GroupState, now: i64, host: &str) -> i64 {
    forget(g, now);
    if g.keys.first().is_some_and(|k| k.moved > 0) {
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
