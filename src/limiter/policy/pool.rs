//! The organization bucket of a key pool, and how a pool probes before any limit is known.
//! Mirrored by `lua/shared.lua`.

use super::{GroupState, Params, eff};

/// The organization bucket's limit and window follow the keys' unless Close announced them.
pub(super) fn sync_org(g: &mut GroupState, now: i64, p: &Params) {
    let Some(org) = g.org.as_mut() else {
        return;
    };
    let mut smallest = 0;
    let mut win = 0;
    let mut end = 0;
    for key in &g.keys {
        if key.lim > 0 && (smallest == 0 || key.lim < smallest) {
            smallest = key.lim;
        }
        win = win.max(key.win);
        if key.end > now && (end == 0 || key.end < end) {
            end = key.end;
        }
    }
    if org.lsrc != 2 {
        org.lim = if p.org_limit > 0 && smallest > 0 {
            p.org_limit
        } else {
            smallest * p.org_mult
        };
        org.win = win;
        // A smaller key limit learned within the window lowers the cap at once.
        if org.end != 0 && org.lim > 0 {
            org.cap = org.cap.min(org.base + eff(org.lim, p));
        }
    }
    if org.lim > 0 && org.end == 0 {
        // The first organization window: follow the keys' window and count every call
        // granted so far (the probes) in it.
        org.end = if end > 0 { end } else { now + org.win };
        org.cap = eff(org.lim, p);
    }
}

/// Until one key of a pool knows the limit, one probe for the whole group, as for one key:
/// the other keys wait for its answer (until when, if one is out). An answer that spoke of
/// the organization teaches it, not the key: then each key probes on its own.
pub(super) fn pool_probing(g: &GroupState, now: i64) -> Option<i64> {
    let unknown = g.keys.iter().all(|k| k.lim == 0) && g.org.as_ref().is_none_or(|o| o.lim == 0);
    unknown
        .then(|| g.keys.iter().map(|k| k.probe).max().unwrap_or(0))
        .filter(|&until| until > now)
}
