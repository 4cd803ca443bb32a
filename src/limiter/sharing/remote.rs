//! The windows other replicas published (`peers.rs`): what this replica publishes of its
//! own, and what it learns from theirs. A group served only on other replicas may share a
//! bucket with one served here (`alone`); the counts each replica saw are pooled, so a pair
//! is judged on every count any replica saw, as if one replica had seen both groups. Pairs
//! are judged among the replicas that share this one's state only: a group of another state
//! (another version) is never served as one with ours.

use std::collections::BTreeSet;

use tokio::time::Instant;

use super::{Seen, Sharing, State, Window, judge};
use crate::limiter::peers::{Heard, LIFETIME};

impl Sharing {
    /// What this replica publishes: each group's windows that have not been over for
    /// `LIFETIME`, as (group, slot, limit, end, counts).
    pub(crate) fn latest(&self, now: Instant) -> Vec<(String, usize, u64, Instant, Vec<u64>)> {
        let Ok(mut state) = self.state.lock() else {
            return Vec::new();
        };
        state.fresh = false;
        let mut out = Vec::new();
        for (name, slots) in &state.windows {
            for (slot, w) in slots.iter().enumerate() {
                let Some(w) = w.as_ref().filter(|w| w.end + LIFETIME > now) else {
                    continue;
                };
                let counts = w.counts.iter().copied().collect();
                out.push((name.clone(), slot, w.limit, w.end, counts));
            }
        }
        out
    }

    /// Whether a group got its first window since the last `latest`.
    pub(crate) fn fresh(&self) -> bool {
        self.state.lock().is_ok_and(|s| s.fresh)
    }

    /// Takes in the windows other replicas published, read at `now`, and judges each pair
    /// of a group served here and another group on the counts every replica saw of them so
    /// far (a window still going on is judged again at the next exchange, on more).
    pub(crate) fn heard(&self, now: Instant, heard: Vec<Heard>) -> Vec<Seen> {
        let Ok(mut state) = self.state.lock() else {
            return Vec::new();
        };
        state.heard = heard;
        state.heard_at = Some(now);
        let mut found = Vec::new();
        let mut matched: Vec<(String, Window, BTreeSet<String>)> = Vec::new();
        for (group, slots) in &state.windows {
            for window in slots.iter().flatten() {
                let others: BTreeSet<String> = state
                    .heard
                    .iter()
                    .filter(|h| h.same_state && &h.group != group && window.matches(h))
                    .map(|h| h.group.clone())
                    .collect();
                if !others.is_empty() {
                    matched.push((group.clone(), window.clone(), others));
                }
            }
        }
        // Oldest first: a pair keeps the evidence of its last two windows.
        matched.sort_by_key(|(_, w, _)| w.end);
        for (group, window, others) in matched {
            let mine = pooled(&state, &group, &window);
            for other in others {
                let theirs = pooled(&state, &other, &window);
                found.extend(judge(&mut state, &group, &other, &window, &mine, &theirs));
            }
        }
        found
    }
}

/// Every count of `group` in the window like `window` that this replica saw or heard of.
fn pooled(state: &State, group: &str, window: &Window) -> BTreeSet<u64> {
    let mut counts = BTreeSet::new();
    let own = state.windows.get(group).into_iter().flatten().flatten();
    for w in own.filter(|w| w.same(window)) {
        counts.extend(w.counts.iter().copied());
    }
    for h in state
        .heard
        .iter()
        .filter(|h| h.same_state && h.group == group)
    {
        if window.matches(h) {
            counts.extend(h.counts.iter().copied());
        }
    }
    counts
}
