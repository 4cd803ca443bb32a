//! Which windows every replica serves, so that one replica knows of the groups of ours that
//! are active only on others. Each replica sees the answers of its own calls only
//! (`sharing.rs`); when each group's callers stay on their own replicas, no replica sees both
//! groups of an undeclared bucket, and each would take the other group's calls for a client
//! outside the gateway, leave them only their pace, and meet 429s (docs/limiter.md, "Groups
//! served on separate replicas").
//!
//! A replica that gets answers publishes, at most every [`EXCHANGE`] (and at once when a group
//! is new to it), each group's latest two windows (limit, end, the counts it saw) in one
//! registry per key pool (a hash in Redis, `lua/peers.lua`, or a map in the in-process state),
//! and reads back every other replica's. Entries live [`LIFETIME`]: a replica that stopped, or
//! a group that went quiet, drops out. Window ends travel as offsets from the registry's
//! clock, so replicas' clocks need not agree.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::Inner;

/// How often a replica that gets answers exchanges its windows for the others'.
pub const EXCHANGE: Duration = Duration::from_millis(500);
/// How long a published window stays in the registry, what was read stays believed, and a
/// window stays published after its end.
pub(crate) const LIFETIME: Duration = Duration::from_secs(2);
/// The registry's format, part of its key: unlike the limiter state, it is not versioned by
/// the limiter script, so that replicas of two versions (a rolling update) see each other.
const FORMAT: u32 = 2;
/// Counts published per window at most: a window's worth at the limits Close sets.
const MAX_COUNTS: usize = 2048;

/// The Lua script of the Redis registry.
pub const PEERS_SCRIPT: &str = include_str!("lua/peers.lua");

/// One window a replica publishes: `end` in microseconds from now, the counts it saw as
/// "3.5.8".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub field: String,
    pub limit: i64,
    pub end: i64,
    pub counts: String,
}

/// A window another replica published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Heard {
    pub group: String,
    pub limit: u64,
    pub end: Instant,
    pub counts: BTreeSet<u64>,
    /// Published by a replica that keeps its limiter state where this one does: of another
    /// version (a rolling update), the same group is served in another state, so its calls
    /// are, to ours, another group's.
    pub same_state: bool,
}

/// A window as the registry answers it: `end` in microseconds from the registry's now.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Published {
    replica: String,
    state: String,
    group: String,
    limit: u64,
    end: i64,
    counts: BTreeSet<u64>,
}

/// The registry's name in Redis, one per key pool, in the `cgw:` namespace.
pub(crate) fn registry_key(pool: &str) -> String {
    format!("{{cgw:peers:{FORMAT}:{pool}}}")
}

/// A registry field: which replica, keeping its state where, published which of a group's
/// windows (0 the latest). Replica and state ids never hold a line break; group names may,
/// so the group comes last.
pub(crate) fn field(replica: &str, slot: usize, state: &str, group: &str) -> String {
    format!("{replica}\n{slot}\n{state}\n{group}")
}

/// What starts the fields of `replica`, which the registry does not answer it.
pub(crate) fn own(replica: &str) -> String {
    format!("{replica}\n")
}

/// The in-process registry, the same rules as `lua/peers.lua`: stores `entries` at `now`,
/// forgets expired ones, and answers what the script answers: every live entry but those
/// whose field starts with `own`.
pub(crate) fn exchange_in(
    registry: &mut HashMap<String, String>,
    now: i64,
    ttl: i64,
    own: &str,
    entries: &[Entry],
) -> Vec<String> {
    for e in entries {
        let value = format!("{},{},{},{}", now + ttl, e.limit, now + e.end, e.counts);
        registry.insert(e.field.clone(), value);
    }
    registry.retain(|_, value| expiry(value).is_some_and(|x| x > now));
    let mut out = vec![now.to_string()];
    for (field, value) in registry.iter() {
        if field.starts_with(own) {
            continue;
        }
        out.push(field.clone());
        out.push(value.clone());
    }
    out
}

/// The expiry of a value, read as the script reads it: digits, maybe after a minus, then a
/// comma.
fn expiry(value: &str) -> Option<i64> {
    let (head, _) = value.split_once(',')?;
    let digits = head.strip_prefix('-').unwrap_or(head);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    head.parse().ok()
}

/// Other replicas' windows in the registry's answer. Entries that do not parse are skipped.
fn decode(out: &[String], replica: &str) -> Vec<Published> {
    let Some(now) = out.first().and_then(|n| n.parse::<i64>().ok()) else {
        return Vec::new();
    };
    let mut heard = Vec::new();
    for pair in out[1..].chunks_exact(2) {
        let mut parts = pair[0].splitn(4, '\n');
        let (Some(from), Some(_slot), Some(state), Some(group)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if from == replica {
            continue;
        }
        let mut values = pair[1].split(',').skip(1);
        let mut number = || values.next().and_then(|v| v.parse::<i64>().ok());
        let (Some(limit), Some(end)) = (number(), number()) else {
            continue;
        };
        let (Ok(limit), Some(end)) = (u64::try_from(limit), end.checked_sub(now)) else {
            continue;
        };
        let counts = pair[1]
            .split(',')
            .nth(3)
            .unwrap_or_default()
            .split('.')
            .filter_map(|c| c.parse().ok())
            .take(MAX_COUNTS)
            .collect();
        heard.push(Published {
            replica: from.to_owned(),
            state: state.to_owned(),
            group: group.to_owned(),
            limit,
            end,
            counts,
        });
    }
    heard
}

/// When this replica last exchanged, and whether an exchange is under way.
#[derive(Default)]
pub(crate) struct Peers {
    state: Mutex<(Option<Instant>, bool)>,
}

impl Peers {
    /// Whether to exchange now (and, if so, marks one under way, which `exchange` ends):
    /// `EXCHANGE` after the last, or at once when `fresh` (a group new to this replica).
    pub(crate) fn due(&self, now: Instant, fresh: bool) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        let (last, busy) = *state;
        if busy || !(fresh || last.is_none_or(|at| now >= at + EXCHANGE)) {
            return false;
        }
        *state = (Some(now), true);
        true
    }

    fn done(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.1 = false;
        }
    }
}

/// Ends the exchange under way when dropped, however the exchange ends.
struct UnderWay<'a>(&'a Peers);

impl Drop for UnderWay<'_> {
    fn drop(&mut self) {
        self.0.done();
    }
}

/// Publishes this replica's latest windows and takes in every other replica's; started
/// after `Peers::due` said so.
pub(crate) async fn exchange(inner: Arc<Inner>) {
    let _under_way = UnderWay(&inner.peers);
    let start = Instant::now();
    let replica = &inner.config.replica_id;
    let state = inner.backend.state_id();
    let entries: Vec<Entry> = inner
        .sharing
        .latest(start)
        .into_iter()
        .map(|(group, slot, limit, end, counts)| Entry {
            field: field(replica, slot, &state, &group),
            limit: i64::try_from(limit).unwrap_or(i64::MAX),
            end: offset(end, start),
            counts: counts
                .iter()
                .take(MAX_COUNTS)
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join("."),
        })
        .collect();
    let Some(out) = inner.backend.peers(&inner.pool, replica, &entries).await else {
        return;
    };
    let published = decode(&out, replica);
    // An answer without the registry's clock is no answer: `decode` read nothing of it.
    if out.first().is_some_and(|now| now.parse::<i64>().is_ok()) {
        let replicas: BTreeSet<&str> = published.iter().map(|p| p.replica.as_str()).collect();
        metrics::counter!("limiter_registry_exchanges_total", "outcome" => "done").increment(1);
        metrics::gauge!("limiter_registry_replicas").set(replicas.len() as f64);
    } else {
        metrics::counter!("limiter_registry_exchanges_total", "outcome" => "failed").increment(1);
    }
    // The script wrote our ends one trip after `start` and others' one trip after theirs;
    // read from `start` too, the two delays cancel.
    let heard = published
        .into_iter()
        .filter_map(|p| {
            Some(Heard {
                end: at(start, p.end)?,
                same_state: p.state == state,
                group: p.group,
                limit: p.limit,
                counts: p.counts,
            })
        })
        .collect();
    let seen = inner.sharing.heard(Instant::now(), heard);
    inner.act(seen);
}

fn offset(end: Instant, now: Instant) -> i64 {
    let micros = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 4);
    if end >= now {
        micros(end - now)
    } else {
        -micros(now - end)
    }
}

/// `offset` microseconds from `now`; None when no instant is that far off.
fn at(now: Instant, offset: i64) -> Option<Instant> {
    let d = Duration::from_micros(offset.unsigned_abs());
    if offset >= 0 {
        now.checked_add(d)
    } else {
        now.checked_sub(d)
    }
}

/// `LIFETIME` in the registry's microseconds.
pub(crate) fn ttl() -> i64 {
    i64::try_from(LIFETIME.as_micros()).unwrap_or(i64::MAX / 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(replica: &str, slot: usize, group: &str, end: i64, counts: &str) -> Entry {
        Entry {
            field: field(replica, slot, "s", group),
            limit: 40,
            end,
            counts: counts.to_owned(),
        }
    }

    fn window(replica: &str, group: &str, end: i64, counts: &[u64]) -> Published {
        Published {
            replica: replica.to_owned(),
            state: "s".to_owned(),
            group: group.to_owned(),
            limit: 40,
            end,
            counts: counts.iter().copied().collect(),
        }
    }

    #[test]
    fn each_replica_reads_the_others_windows_until_they_expire() {
        let mut registry = HashMap::new();
        let mut exchange = |now, replica, entries: &[Entry]| {
            let out = exchange_in(&mut registry, now, 2_000_000, &own(replica), entries);
            decode(&out, replica)
        };
        let a = [entry("a", 0, "task.write", 300_000, "2.5")];
        assert!(exchange(1_000_000, "a", &a).is_empty());
        let b = [
            entry("b", 0, "activity.write", 250_000, "1"),
            entry("b", 1, "activity.write", -750_000, ""),
        ];
        let heard = exchange(1_100_000, "b", &b);
        assert_eq!(heard, [window("a", "task.write", 200_000, &[2, 5])]);
        let mut heard = exchange(1_200_000, "a", &[]);
        heard.sort();
        assert_eq!(
            heard,
            [
                window("b", "activity.write", -850_000, &[]),
                window("b", "activity.write", 150_000, &[1]),
            ]
        );
        // a's entry, written at 1.0 s, expires at 3.0 s; b's at 3.1 s.
        assert!(exchange(3_000_000, "b", &[]).is_empty());
        assert_eq!(exchange(3_000_000, "a", &[]).len(), 2);
        assert!(exchange(3_100_000, "a", &[]).is_empty());
        assert!(registry.is_empty());
    }

    #[test]
    fn malformed_entries_are_skipped() {
        let out: Vec<String> = [
            "5",
            "b\n0\ns\ng",
            "9,40,7,3.x.4",
            "b\n0\ng",
            "9,40,7",
            "c\n1\ns\nh",
            "9,x,7",
            "c\n1\ns\ni",
            "9,-1,7",
            "d\n0\ns\nk",
            "9,40",
        ]
        .map(str::to_owned)
        .into();
        assert_eq!(decode(&out, "a"), [window("b", "g", 2, &[3, 4])]);
        assert!(decode(&["x".to_owned()], "a").is_empty());
        assert!(decode(&[], "a").is_empty());
        // An end no offset from the registry's clock can hold.
        let far: Vec<String> = ["5", "b\n0\ns\ng", "9,40,-9223372036854775808"]
            .map(str::to_owned)
            .into();
        assert!(decode(&far, "a").is_empty());
    }

    /// Values the script would delete are deleted: the expiry is digits, maybe after a
    /// minus, then a comma.
    #[test]
    fn an_expiry_is_read_as_the_script_reads_it() {
        assert_eq!(expiry("99,40,7,"), Some(99));
        assert_eq!(expiry("-5,40,7,"), Some(-5));
        for bad in ["99999", "+99,40", ",40", "-,40", "9x,40", ""] {
            assert_eq!(expiry(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_exchange_is_due_at_once_for_a_new_group_else_every_period() {
        let peers = Peers::default();
        let t = Instant::now();
        assert!(peers.due(t, false));
        assert!(!peers.due(t + EXCHANGE, true), "one under way");
        peers.done();
        assert!(!peers.due(t + EXCHANGE / 2, false));
        assert!(peers.due(t + EXCHANGE / 2, true));
        peers.done();
        assert!(!peers.due(t + EXCHANGE, false));
        assert!(peers.due(t + EXCHANGE * 3 / 2, false));
    }
}
