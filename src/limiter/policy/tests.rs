use super::*;

mod join;
mod others;
mod pool;

const S: i64 = 1_000_000;
const MS: i64 = 1_000;

pub(crate) fn params() -> Params {
    Params {
        margin_pm: 20,
        share: 1,
        guard_min: 2 * MS,
        horizon: [0, 4, 2],
        reserve_high: 1,
        probe_timeout: 30 * S,
        learned_ttl: 3600 * S,
        default_limit: 10,
        default_window: S,
        default_pause: S,
        demand_ttl: S,
        org_limit: 0,
        org_mult: 3,
        ask_gap: 2,
    }
}

fn ask(prio: usize, n: i64) -> Ask {
    Ask {
        prio,
        n,
        max_wait: i64::MAX / 4,
        replica: "a".into(),
        demand: [0; 4],
    }
}

fn header(grant: &Grant, limit: i64, remaining: i64, reset: i64) -> Obs {
    Obs {
        key: grant.key,
        seq: grant.seq,
        oseq: grant.oseq,
        probe: grant.probe,
        status: 200,
        limit,
        remaining,
        reset,
        window: -1,
        retry_after: -1,
        rtt: MS,
        replica: "a".into(),
        ..Obs::default()
    }
}

/// A pool of `keys` keys with its organization bucket.
fn pool(keys: usize) -> GroupState {
    GroupState {
        keys: vec![Bucket::default(); keys],
        org: Some(Bucket::default()),
        ..GroupState::default()
    }
}

fn one_key() -> GroupState {
    GroupState {
        keys: vec![Bucket::default()],
        ..GroupState::default()
    }
}

fn granted(answer: Answer) -> Vec<Grant> {
    match answer {
        Answer::Granted(g, _) => g,
        other => panic!("expected a grant, got {other:?}"),
    }
}

#[test]
fn one_probe_until_the_first_header_then_the_learned_room() {
    let p = params();
    let mut g = one_key();
    let (first, _) = acquire(&mut g, 0, &ask(1, 5), &p);
    let first = granted(first);
    assert_eq!(first.len(), 1);
    assert!(first[0].probe);
    let (second, _) = acquire(&mut g, MS, &ask(1, 1), &p);
    assert_eq!(
        second,
        Answer::Wait {
            until: 30 * S,
            why: Why::Probe
        }
    );
    // Close: limit 10 per window, 9 left, window ends in 0.5 s.
    let view = observe(&mut g, 2 * MS, &header(&first[0], 10, 9, S / 2), &p);
    assert_eq!(
        (view.lim, view.win, view.lsrc, view.lat),
        (10, S, 2, 2 * MS)
    );
    assert_eq!(view.remaining, 9);
    // Nine calls spread over what is left of the window before its guard. In a group's
    // first window no more than the next four token intervals are booked (Close may count
    // another group's calls in the same bucket): five, then the other four.
    let (batch, _) = acquire(&mut g, 2 * MS, &ask(HIGH, 20), &p);
    let batch = granted(batch);
    assert_eq!(batch.len(), 5);
    let end = 2 * MS + S / 2;
    let stop = end - 2 * MS;
    assert_eq!(batch[0].at, 2 * MS);
    let (rest, _) = acquire(&mut g, batch[4].at, &ask(HIGH, 20), &p);
    let rest = granted(rest);
    assert_eq!(rest.len(), 4);
    assert!(batch.iter().chain(&rest).all(|g| g.at < stop));
    let (full, _) = acquire(&mut g, rest[0].at, &ask(HIGH, 1), &p);
    assert_eq!(
        full,
        Answer::Wait {
            until: end,
            why: Why::Full
        }
    );
    // The next window opens with the full learned limit (of which, before its first
    // answer, the next four token intervals are booked).
    let (next, view) = acquire(&mut g, end, &ask(HIGH, 20), &p);
    assert_eq!((granted(next).len(), view.remaining), (5, 5));
}

#[test]
fn close_remaining_bounds_the_room_and_overtaking_calls_cancel_out() {
    let p = params();
    let mut g = one_key();
    let probe = granted(acquire(&mut g, 0, &ask(1, 1), &p).0)[0];
    observe(&mut g, MS, &header(&probe, 100, 99, S - MS), &p);
    seen_before(&mut g);
    let grants = granted(acquire(&mut g, MS, &ask(HIGH, 3), &p).0);
    // Another client of the key took 50: Close says 40 left after our second call.
    let view = observe(&mut g, 2 * MS, &header(&grants[0], 100, 40, S - 2 * MS), &p);
    // cap = seq of that call + 40 - margin 2; one more of ours is already admitted.
    assert_eq!(view.remaining, grants[0].seq + 40 - 2 - grants[2].seq);
    // The second call arrived before the first (count 10 < 60): it was one of the 60, so
    // others used one less than feared.
    let before = view.remaining;
    let view = observe(&mut g, 3 * MS, &header(&grants[1], 100, 90, S - 3 * MS), &p);
    assert_eq!(view.remaining, before + 1);
    // Close never gets more room than it announced: another answer with 30 left.
    let view = observe(&mut g, 4 * MS, &header(&grants[2], 100, 30, S - 4 * MS), &p);
    assert_eq!(view.remaining, 30 - 2);
}

#[test]
fn a_429_pauses_until_close_reset_then_retry_after_then_default() {
    let p = params();
    for (reset, retry_after, expect) in
        [(300 * MS, 2 * S, 300 * MS), (-1, 2 * S, 2 * S), (-1, -1, S)]
    {
        let mut g = one_key();
        let probe = granted(acquire(&mut g, 0, &ask(1, 1), &p).0)[0];
        observe(&mut g, 0, &header(&probe, 10, 9, S), &p);
        let call = granted(acquire(&mut g, 0, &ask(HIGH, 1), &p).0)[0];
        let mut throttled = header(&call, 10, 0, reset);
        throttled.status = 429;
        throttled.retry_after = retry_after;
        let view = observe(&mut g, 10 * MS, &throttled, &p);
        assert_eq!((view.pause, view.n429), (10 * MS + expect, 1));
        let (answer, _) = acquire(&mut g, 20 * MS, &ask(HIGH, 1), &p);
        assert_eq!(
            answer,
            Answer::Wait {
                until: 10 * MS + expect,
                why: Why::Paused
            }
        );
        let after = granted(acquire(&mut g, 10 * MS + expect, &ask(HIGH, 1), &p).0);
        assert_eq!(after.len(), 1);
    }
}

/// As after a window was seen: booking ahead beyond the short horizon is open (in a
/// group's first window it is not, see `candidate`), and no more urgent calls are expected.
fn seen_before(g: &mut GroupState) {
    for b in g.keys.iter_mut().chain(g.org.as_mut()) {
        b.hist = 1;
    }
}

/// Learns limit 100 per second with a window ending at `end`.
fn learned(limit: i64, end: i64) -> GroupState {
    let p = params();
    let mut g = one_key();
    let probe = granted(acquire(&mut g, 0, &ask(1, 1), &p).0)[0];
    observe(&mut g, 0, &header(&probe, limit, limit - 1, end), &p);
    g
}

/// `n` slots at `prio`, asked for again when told to (or at the last slot granted) until
/// all came.
fn take(g: &mut GroupState, from: i64, prio: usize, n: i64) -> Vec<Grant> {
    let p = params();
    let mut now = from;
    let mut all: Vec<Grant> = Vec::new();
    while (all.len() as i64) < n {
        match acquire(g, now, &ask(prio, n - all.len() as i64), &p).0 {
            Answer::Granted(more, _) => {
                now = more.iter().map(|g| g.at).max().unwrap_or(now);
                all.extend(more);
            }
            Answer::Wait { until, .. } => now = until,
        }
    }
    all
}

#[test]
fn low_books_ahead_only_room_more_urgent_calls_did_not_use_and_high_overtakes_it() {
    let p = params();
    let mut g = learned(100, S);
    // Window 1, the group's first: 97 left (margin 2). High and normal take 20 and 10, a
    // few token intervals ahead at a time; low books no further ahead than its horizon.
    let high = take(&mut g, 0, HIGH, 20);
    let normal = take(&mut g, 0, NORMAL, 10);
    let last = high
        .iter()
        .chain(&normal)
        .map(|g| g.at)
        .max()
        .unwrap_or_default();
    assert!(last < S / 2, "{last}");
    let low = granted(acquire(&mut g, last, &ask(LOW, 100), &p).0);
    assert!((1..=3).contains(&low.len()), "{low:?}");
    let (answer, _) = acquire(&mut g, last, &ask(LOW, 100), &p);
    assert!(
        matches!(
            answer,
            Answer::Wait {
                why: Why::Pacing,
                ..
            }
        ),
        "{answer:?}"
    );
    // Window 2: nothing is booked ahead before its first answer tells what others took.
    let early = granted(acquire(&mut g, S, &ask(LOW, 100), &p).0).len() as i64;
    assert!((1..=3).contains(&early), "{early}");
    let first = granted(acquire(&mut g, S, &ask(HIGH, 1), &p).0)[0];
    observe(&mut g, S, &header(&first, 100, 99, S), &p);
    // Then last window's more urgent calls are expected again, in proportion to the time
    // left: 20 high, and 11 normal (the probe among them) but at least an eighth of the
    // room (12), as that window was the group's first, seen only in part. Low books ahead
    // 98 less those booked, the high reserve and the 32.
    let low = granted(acquire(&mut g, S, &ask(LOW, 100), &p).0);
    assert_eq!(low.len() as i64, 98 - (early + 1) - 1 - 32);
    let last_low = low[low.len() - 1].at;
    let step = low[1].at - low[0].at;
    let (answer, _) = acquire(&mut g, S, &ask(LOW, 1), &p);
    let Answer::Wait { until, why } = answer else {
        panic!("low must wait")
    };
    // Until its next slot, a step after the last it booked, is one of the next two (the
    // short horizon).
    assert_eq!(why, Why::Pacing);
    assert!((last_low - 2 * step..=last_low).contains(&until), "{until}");
    // A high call goes within a token interval (the first high took the current one), and
    // the room kept serves all the others, paced over what is left of this window.
    let high = granted(acquire(&mut g, S + MS, &ask(HIGH, 1), &p).0);
    assert!(high[0].at < S + MS + S / 98, "{}", high[0].at);
    let highs = granted(acquire(&mut g, S + MS, &ask(HIGH, 31), &p).0);
    assert_eq!(highs.len(), 31);
    assert!(highs.iter().all(|h| h.at < 2 * S - 2 * MS));
}

/// A cold start's first window is seen from the probe's answer on: its `high` calls are a
/// part of a window's. The next window keeps room for at least an eighth of the limit of
/// them, as a window without history does; with the two seen, the third of a steady stream
/// of twelve found the room booked by `low` and waited for the next window.
#[test]
fn the_window_after_a_cold_start_keeps_room_for_high_as_one_without_history() {
    let p = params();
    let mut g = learned(100, S / 4);
    take(&mut g, 0, HIGH, 2);
    // Window 2, [S/4, 5S/4): its first answer, then `low` asks every millisecond for all
    // it may get while a `high` call comes every twelfth of a second.
    let first = granted(acquire(&mut g, S / 4, &ask(LOW, 1), &p).0)[0];
    observe(&mut g, S / 4, &header(&first, 100, 99, S), &p);
    let (mut lows, mut waits) = (1, Vec::new());
    let mut due = S / 4 + S / 24;
    for now in (S / 4..S / 4 + S).step_by(MS as usize) {
        if now >= due {
            let wait = match acquire(&mut g, now, &ask(HIGH, 1), &p).0 {
                Answer::Granted(high, _) => high[0].at - now,
                Answer::Wait { until, .. } => until - now,
            };
            waits.push(wait);
            due += S / 12;
        }
        if let Answer::Granted(low, _) = acquire(&mut g, now, &ask(LOW, 100), &p).0 {
            lows += low.len();
        }
    }
    // No `high` call waits a token interval (1 s / 98); `low` has all the rest of the 98.
    assert_eq!(waits.len(), 12);
    assert!(waits.iter().all(|w| *w < S / 98), "{waits:?}");
    assert_eq!(lows, 98 - 12);
}

#[test]
fn low_yields_the_last_room_to_high_waiting_on_another_replica() {
    let p = params();
    let mut g = learned(3, S);
    // Replica b has a high call waiting; replica a asks for low.
    let mut b = ask(HIGH, 0);
    b.replica = "b".into();
    b.demand = [1, 0, 0, 0];
    acquire(&mut g, 0, &b, &p);
    // Two of three left after the probe, and the high call and the high reserve want them:
    // low waits for the window's last half token interval.
    let (answer, _) = acquire(&mut g, 0, &ask(LOW, 5), &p);
    let Answer::Wait { until, why } = answer else {
        panic!("expected a wait, got {answer:?}");
    };
    assert_eq!(why, Why::Pacing);
    // `stop` is the end less the guard (2 ms); a token interval is a third of the window.
    assert_eq!(until, S - 2 * MS - S / 3 / 2);
    b.n = 1;
    let high = granted(acquire(&mut g, 400 * MS, &b, &p).0);
    assert_eq!(high.len(), 1);
    // Served, its call waits no more (else the others yield room to it until b reports).
    assert_eq!(g.demand["b"].counts, [0, 0, 0, 0]);
    // Replica b reports another high call waiting: the last slot is not low's.
    b.n = 0;
    acquire(&mut g, 410 * MS, &b, &p);
    let (answer, _) = acquire(&mut g, 410 * MS, &ask(LOW, 1), &p);
    assert!(matches!(
        answer,
        Answer::Wait {
            why: Why::Priority,
            ..
        }
    ));
}

/// A replica's callers at `normal` never outnumber its calls left once some were served.
#[test]
fn served_calls_take_their_callers_out_of_the_share() {
    let p = params();
    let mut g = learned(40, S);
    seen_before(&mut g);
    let mut b = asker("b", NORMAL, 5);
    b.demand[CALLERS] = 5;
    let served = granted(acquire(&mut g, 0, &b, &p).0);
    let left = 5 - served.len() as i64;
    assert!(left < 5, "{served:?}");
    assert_eq!(g.demand["b"].counts, [0, left, 0, left]);
}

#[test]
fn responses_without_headers_fall_back_to_the_default_limit() {
    let p = params();
    let mut g = one_key();
    let probe = granted(acquire(&mut g, 0, &ask(1, 1), &p).0)[0];
    let mut bare = header(&probe, -1, -1, -1);
    bare.limit = 0;
    let view = observe(&mut g, MS, &bare, &p);
    assert_eq!((view.lim, view.win, view.lsrc), (10, S, 1));
    // No answer confirms the window: the next four token intervals only, then the rest.
    let grants = granted(acquire(&mut g, MS, &ask(HIGH, 20), &p).0);
    assert_eq!(grants.len(), 5);
    let rest = granted(acquire(&mut g, grants[4].at, &ask(HIGH, 20), &p).0);
    assert_eq!(rest.len(), 4, "ten with the probe");
}

fn asker(replica: &str, prio: usize, n: i64) -> Ask {
    let mut demand = [0; 4];
    demand[prio] = n;
    Ask {
        replica: replica.into(),
        demand,
        ..ask(prio, n)
    }
}

#[test]
fn replicas_waiting_for_the_same_room_are_told_to_ask_one_after_another() {
    let p = params();
    let mut g = learned(100, S);
    seen_before(&mut g);
    // Replica a books ahead all it may (97 less the high reserve).
    let booked = granted(acquire(&mut g, 0, &asker("a", LOW, 100), &p).0);
    assert_eq!(booked.len(), 96);
    let (first, _) = acquire(&mut g, MS, &asker("b", LOW, 1), &p);
    let Answer::Wait { until, why } = first else {
        panic!("{first:?}")
    };
    assert_eq!(why, Why::Pacing);
    // Another replica waiting for it comes two token intervals (1 s / 98) later, and a
    // replica asking again before its turn keeps its place.
    let gap = 2 * (S / 98);
    let (second, _) = acquire(&mut g, MS, &asker("c", LOW, 1), &p);
    assert_eq!(
        second,
        Answer::Wait {
            until: until + gap,
            why
        }
    );
    let (again, _) = acquire(&mut g, 2 * MS, &asker("b", LOW, 1), &p);
    assert_eq!(again, Answer::Wait { until, why });
    // Alone at its priority, a replica is told the plain time.
    let mut g = learned(100, S);
    seen_before(&mut g);
    granted(acquire(&mut g, 0, &asker("a", LOW, 100), &p).0);
    let (alone, _) = acquire(&mut g, MS, &asker("a", LOW, 1), &p);
    assert_eq!(alone, first);
}

/// A `high` call served by a slot booked for `low` is still a `high` admission: the next
/// window keeps room for as many `high` calls.
#[test]
fn a_high_call_on_a_low_slot_counts_among_the_high_admissions() {
    let p = params();
    let mut g = learned(10, S);
    let low = granted(acquire(&mut g, 0, &ask(LOW, 2), &p).0);
    assert_eq!(g.keys[0].nh, 0);
    let borrowed = Obs {
        borrowed: true,
        ..header(&low[0], 10, 8, S - 10 * MS)
    };
    observe(&mut g, 10 * MS, &borrowed, &p);
    observe(&mut g, 20 * MS, &header(&low[1], 10, 7, S - 20 * MS), &p);
    assert_eq!(g.keys[0].nh, 1);
    // The next window remembers it.
    acquire(&mut g, S + MS, &ask(LOW, 1), &p);
    assert_eq!((g.keys[0].ph, g.keys[0].nh), (1, 0));
}
