//! Which groups seem to share one Close bucket that nobody declared, for operators: the
//! limiter copes either way (see `docs/limiter.md`), but one declared group is exact.
//!
//! Close counts the calls of one bucket one by one, so two groups it counts together never
//! report the same count (`limit - remaining`) in one window; two groups it counts apart
//! soon do. Each replica compares the counts of its own answers, and those other replicas
//! published (`peers.rs`, `remote.rs`), window by window, for groups with the same limit
//! and the same window end. A pair is suspected once no count collided while, were the
//! groups counted apart, about six would have been expected (a false suspicion would have a
//! chance of about e^-6 were the counts random; those of two groups with the same limit and
//! pace are not, and `join` checks Close's counts before it serves a pair as one); one
//! collision clears it.
//!
//! Order proves the converse at once: a call sent after another group's call was answered
//! reaches Close after it was counted, so in one bucket it gets a higher count. A lower or
//! equal one, in the same window, proves two buckets. Unlike collisions, this does not rely
//! on which calls a replica happens to see: replicas that take turns may each see counts
//! that never collide (every third one, say), counted together or not. It needs both
//! answers on this replica.
//!
//! The scheduler asks the converse (`alone`): whether every group that could be counted in
//! one bucket with a given group was seen counted apart from it. Only then are calls that
//! Close counted beside ours known to be another client's, which keep their pace. Groups
//! active only on other replicas count too: a window another replica published can match,
//! and so does one of the same group kept in another state (another version, during a
//! rolling update), which nothing here can prove apart.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::peers::{Heard, LIFETIME};
use crate::close::ratelimit::RateLimitInfo;

/// Answers whose window ends lie closer than this describe the same Close window.
const SAME_WINDOW: Duration = Duration::from_millis(200);
/// Collisions expected if counted apart, in thousandths, before a pair is suspected.
const EVIDENCE: u64 = 6_000;

/// What one answer showed of a pair of groups (names in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Newly suspected of sharing one bucket.
    Together(String, String),
    /// Seen counted apart: a collision or an order proof, in a window of an answer's or of
    /// an exchange's.
    Apart(String, String),
}

#[derive(Default)]
pub(crate) struct Sharing {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Per group, the counts of its current window and of the one before.
    windows: HashMap<String, [Option<Window>; 2]>,
    pairs: HashMap<(String, String), Pair>,
    /// Windows other replicas published, and when they were read.
    heard: Vec<Heard>,
    heard_at: Option<Instant>,
    /// A group got its first window since this replica last published.
    fresh: bool,
}

#[derive(Clone)]
struct Window {
    limit: u64,
    end: Instant,
    counts: BTreeSet<u64>,
    /// When each count came back, in that order.
    answered: Vec<(Instant, u64)>,
}

#[derive(Default)]
struct Pair {
    evidence: u64,
    /// The last two windows whose evidence was counted (end, how much): a window judged
    /// again on more counts adds only the difference.
    counted: [Option<(Instant, u64)>; 2],
    suspected: bool,
    /// A collision was seen since the last suspicion: two buckets.
    distinct: bool,
}

impl Window {
    fn same(&self, other: &Window) -> bool {
        self.limit == other.limit && near(self.end, other.end)
    }

    /// Whether another replica's window is this one of Close's.
    fn matches(&self, heard: &Heard) -> bool {
        self.limit == heard.limit && near(self.end, heard.end)
    }
}

fn near(a: Instant, b: Instant) -> bool {
    let apart = if a > b { a - b } else { b - a };
    apart < SAME_WINDOW
}

impl Sharing {
    /// Records one answer of `group` to a call sent (handed its permit) at `sent`; returns
    /// the pairs it newly suspects of sharing a bucket and those it just saw counted apart.
    pub(crate) fn record(
        &self,
        group: &str,
        sent: Instant,
        now: Instant,
        status: u16,
        info: &RateLimitInfo,
    ) -> Vec<Seen> {
        let (Some(limit), Some(remaining), Some(reset)) = (info.limit, info.remaining, info.reset)
        else {
            return Vec::new();
        };
        // A 429 was not counted; its `remaining` says nothing of a call of its own.
        if status == 429 || remaining >= limit {
            return Vec::new();
        }
        let Ok(mut state) = self.state.lock() else {
            return Vec::new();
        };
        let count = limit - remaining;
        let current = Window {
            limit,
            end: now + reset,
            counts: BTreeSet::new(),
            answered: Vec::new(),
        };
        let mut found = out_of_order(&mut state, group, &current, sent, count);
        if !state.windows.contains_key(group) {
            state.fresh = true;
        }
        let slots = state.windows.entry(group.to_owned()).or_default();
        let rolled = match &slots[0] {
            Some(w) if w.same(&current) => None,
            _ => slots[0].replace(current),
        };
        if let Some(done) = rolled {
            slots[1] = Some(done.clone());
            found.extend(compare(&mut state, group, &done));
        }
        if let Some(w) = state.windows.get_mut(group).and_then(|s| s[0].as_mut()) {
            w.counts.insert(count);
            w.answered.push((now, count));
        }
        found
    }

    /// Whether every other group whose answers showed the same limit and window as
    /// `group`'s was seen counted apart from it, and no other replica published a window of
    /// another group that matches; false until this replica saw a whole window of `group`:
    /// in the first, another group of ours may not have answered yet.
    pub(crate) fn alone(&self, group: &str, now: Instant) -> bool {
        let Ok(state) = self.state.lock() else {
            return false;
        };
        let Some(mine) = state.windows.get(group) else {
            return false;
        };
        if mine[1].is_none() {
            return false;
        }
        let apart = |name: &str| {
            state
                .pairs
                .get(&key(group, name))
                .is_some_and(|p| p.distinct)
        };
        for (name, slots) in &state.windows {
            if name == group {
                continue;
            }
            let same = mine
                .iter()
                .flatten()
                .any(|w| slots.iter().flatten().any(|o| w.same(o)));
            if same && !apart(name) {
                return false;
            }
        }
        if state.heard_at.is_none_or(|at| now >= at + LIFETIME) {
            return true;
        }
        for heard in &state.heard {
            // The same group in another state (another version) is another group to ours,
            // which no count can prove apart; another group seen apart is apart in any state.
            let own_group = heard.group == group;
            if own_group && heard.same_state {
                continue;
            }
            let same = mine.iter().flatten().any(|w| w.matches(heard));
            if same && (own_group || !apart(&heard.group)) {
                return false;
            }
        }
        true
    }

    /// The groups `group` is suspected of sharing a bucket with.
    pub(crate) fn partners(&self, group: &str) -> Vec<String> {
        let Ok(state) = self.state.lock() else {
            return Vec::new();
        };
        partners(&state, group)
    }

    /// Sets the gauge `limiter_suspected_shared` of `groups` to their partners' count, under
    /// the lock that changes them: two answers acted on at once cannot leave an old count.
    pub(crate) fn export(&self, groups: [&str; 2]) {
        let Ok(state) = self.state.lock() else {
            return;
        };
        for group in groups {
            let suspected = partners(&state, group).len() as f64;
            metrics::gauge!("limiter_suspected_shared", "group" => group.to_owned()).set(suspected);
        }
    }
}

fn partners(state: &State, group: &str) -> Vec<String> {
    let mut out: Vec<String> = state
        .pairs
        .iter()
        .filter(|(_, pair)| pair.suspected)
        .filter_map(|((a, b), _)| match (a == group, b == group) {
            (true, _) => Some(b.clone()),
            (_, true) => Some(a.clone()),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

/// Pairs that a call of `group` with `count`, sent at `sent`, proves apart: another group's
/// call of the same window came back before it was sent with a count as high.
fn out_of_order(
    state: &mut State,
    group: &str,
    window: &Window,
    sent: Instant,
    count: u64,
) -> Vec<Seen> {
    let mut apart = Vec::new();
    for (name, slots) in &state.windows {
        if name == group {
            continue;
        }
        let before = slots.iter().flatten().filter(|w| w.same(window)).any(|w| {
            w.answered
                .iter()
                .take_while(|(at, _)| *at < sent)
                .any(|(_, c)| *c >= count)
        });
        if before {
            apart.push(key(group, name));
        }
    }
    let mut found = Vec::new();
    for pair in apart {
        state.pairs.insert(
            pair.clone(),
            Pair {
                distinct: true,
                ..Pair::default()
            },
        );
        found.push(Seen::Apart(pair.0, pair.1));
    }
    found
}

/// Compares the window `group` just finished with every other group's matching window.
fn compare(state: &mut State, group: &str, done: &Window) -> Vec<Seen> {
    let mut found = Vec::new();
    let others: Vec<(String, Window)> = state
        .windows
        .iter()
        .filter(|(name, _)| name.as_str() != group)
        .filter_map(|(name, slots)| {
            let w = slots.iter().flatten().find(|w| w.same(done))?;
            Some((name.clone(), w.clone()))
        })
        .collect();
    for (other, window) in others {
        found.extend(judge(
            state,
            group,
            &other,
            done,
            &done.counts,
            &window.counts,
        ));
    }
    found
}

/// Judges the pair of `group` and `other` on one window like `done`, from the counts of it
/// known for each: a collision proves two buckets; none adds evidence of one, once per
/// window (judged again on more counts, the difference).
fn judge(
    state: &mut State,
    group: &str,
    other: &str,
    done: &Window,
    mine: &BTreeSet<u64>,
    theirs: &BTreeSet<u64>,
) -> Option<Seen> {
    let key = key(group, other);
    let pair = state.pairs.entry(key.clone()).or_default();
    if mine.intersection(theirs).next().is_some() {
        *pair = Pair {
            distinct: true,
            ..Pair::default()
        };
        return Some(Seen::Apart(key.0, key.1));
    }
    let part = (mine.len() * theirs.len()) as u64 * 1000 / done.limit.max(1);
    let same = |c: &Option<(Instant, u64)>| c.is_some_and(|(end, _)| near(end, done.end));
    match pair.counted.iter().position(same) {
        Some(i) => {
            if let Some((_, before)) = &mut pair.counted[i] {
                pair.evidence += part.saturating_sub(*before);
                *before = (*before).max(part);
            }
        }
        None if pair.counted[0].is_none_or(|(end, _)| end < done.end) => {
            pair.counted = [Some((done.end, part)), pair.counted[0]];
            pair.evidence += part;
        }
        None if pair.counted[1].is_none_or(|(end, _)| end < done.end) => {
            pair.counted[1] = Some((done.end, part));
            pair.evidence += part;
        }
        // Older than both windows counted: its evidence is in.
        None => return None,
    }
    if pair.evidence >= EVIDENCE && !pair.suspected {
        pair.suspected = true;
        pair.distinct = false;
        return Some(Seen::Together(key.0, key.1));
    }
    None
}

fn key(a: &str, b: &str) -> (String, String) {
    if a < b {
        (a.to_owned(), b.to_owned())
    } else {
        (b.to_owned(), a.to_owned())
    }
}

mod remote;
#[cfg(test)]
mod tests;
