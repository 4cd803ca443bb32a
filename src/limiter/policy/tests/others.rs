//! Others in a window's bucket: groups of ours that Close counts together, another client
//! of the key, our own calls straddling two windows.

use super::*;

/// Limit 40 per second, the window ending at S: another group of ours, counted by Close in
/// the same bucket, sends one call after each of our 19; one more of ours (returned) is
/// still unanswered when the window ends.
pub(super) fn a_window_shared_half_and_half() -> (GroupState, Grant) {
    let p = params();
    let mut g = learned(40, S);
    seen_before(&mut g);
    let ours = granted(acquire(&mut g, 0, &ask(HIGH, 19), &p).0);
    for (j, grant) in ours.iter().enumerate() {
        let count = 3 + 2 * j as i64;
        let at = 10 * MS + 50 * MS * j as i64;
        observe(&mut g, at, &header(grant, 40, 40 - count, S - at), &p);
    }
    let late = granted(acquire(&mut g, 960 * MS, &ask(HIGH, 1), &p).0)[0];
    (g, late)
}

/// Close's answer to `grant` `ms` milliseconds into the window from S (limit 40), having
/// counted `count` calls; `alone` as the replica judged it.
fn counted(g: &mut GroupState, ms: i64, grant: &Grant, count: i64, alone: bool) -> View {
    let o = Obs {
        alone,
        ..header(grant, 40, 40 - count, S - ms * MS)
    };
    observe(g, S + ms * MS, &o, &params())
}

#[test]
fn the_next_window_leaves_what_others_in_the_bucket_took_in_the_last() {
    let p = params();
    let (mut g, late) = a_window_shared_half_and_half();
    // Window 2: others took the 19 we saw, and at their pace over the 90 ms after our last
    // answer, another (all that was left of the room): 20 are for us.
    assert_eq!(granted(acquire(&mut g, S, &ask(HIGH, 100), &p).0).len(), 20);
    // The late answer: Close counted 40, 21 of them ours. Others took 19: one more for us.
    let view = observe(&mut g, S + MS, &header(&late, 40, 0, MS), &p);
    assert_eq!(view.remaining, 1);
    // A call answered 429 is not among the calls Close counted.
    let mut g = learned(40, S);
    let call = granted(acquire(&mut g, MS, &ask(HIGH, 1), &p).0)[0];
    let mut throttled = header(&call, 40, 0, S - 2 * MS);
    throttled.status = 429;
    observe(&mut g, 2 * MS, &throttled, &p);
    assert_eq!((g.keys[0].cmax, g.keys[0].nobs), (40, 1));
}

/// A call admitted just before our window rolled may reach Close after Close's did: Close
/// counts it in the new window, outside that window's admissions, so it leaves that much
/// less room there, as a call of others would.
#[test]
fn a_call_that_straddled_into_the_next_window_takes_room_of_it() {
    let p = params();
    let mut g = learned(10, S);
    seen_before(&mut g);
    let grants = granted(acquire(&mut g, 0, &ask(HIGH, 9), &p).0);
    assert_eq!(grants.len(), 9);
    // Close's window ended at S; the last call got there just after and was counted first
    // in the next one.
    let last = grants[8];
    let view = observe(&mut g, S + MS, &header(&last, 10, 9, S - MS), &p);
    assert_eq!(view.remaining, 9);
}

/// In a group's first window, answers showing calls of others (a group of ours that Close
/// counts in the same bucket, which also started with the whole limit) leave us at most
/// half of what Close says is left, booked no more than a token interval ahead: two
/// groups doing so never overbook the window. With a window seen before, the room kept
/// for others does that job instead.
#[test]
fn a_first_window_shared_with_others_leaves_us_half_of_what_is_left() {
    let p = params();
    for seen in [false, true] {
        let mut g = learned(40, S);
        if seen {
            seen_before(&mut g);
        }
        let call = granted(acquire(&mut g, 10 * MS, &ask(HIGH, 1), &p).0)[0];
        // Close counted 6: our 2 and 4 of others. 34 left (margin 0 of 40).
        let view = observe(&mut g, 20 * MS, &header(&call, 40, 34, S - 20 * MS), &p);
        let grants = granted(acquire(&mut g, 20 * MS, &ask(HIGH, 100), &p).0);
        if seen {
            assert_eq!(view.remaining, 34);
            assert!(grants.len() > 2, "{grants:?}");
            continue;
        }
        assert_eq!(view.remaining, 17);
        // Booked a token interval (25 ms) ahead at most: the slot at 35 ms, not the next at
        // 60 ms, which booking a whole pacing step ahead used to allow.
        let at: Vec<i64> = grants.iter().map(|g| g.at).collect();
        assert_eq!(at, [35 * MS]);
    }
}

/// Our call that straddled into the next window took room of it: where room is kept for
/// others, it comes out of ours (else the window is overbooked by one per straddler).
#[test]
fn a_straddling_call_comes_out_of_our_room_beside_others() {
    let p = params();
    let (mut g, late) = a_window_shared_half_and_half();
    // Window 2: 20 for us, all booked; the late call was counted first in it.
    assert_eq!(granted(acquire(&mut g, S, &ask(HIGH, 100), &p).0).len(), 20);
    observe(&mut g, S + 2 * MS, &header(&late, 40, 39, S - 2 * MS), &p);
    // One more than the window allows us is booked already: the cap is one below it.
    assert_eq!(g.keys[0].cap - g.keys[0].seq, -1);
}

/// Others that take more than the room kept for them (a client of the key that appeared
/// late in the previous window) make a window crowded too: besides keeping half of what is
/// left, we leave what they will take before the end at the pace they had so far, and look
/// again a token interval later rather than at the window's end, as answers free room.
/// Once they took nothing for twice that pace, only the half is kept.
#[test]
fn others_beyond_their_reserve_keep_their_pace_until_they_stop() {
    let p = params();
    let mut g = learned(40, S);
    seen_before(&mut g);
    let ours = granted(acquire(&mut g, S, &ask(HIGH, 2), &p).0);
    assert_eq!(ours.len(), 2);
    // The previous window showed two calls of others.
    g.keys[0].fres = 2;
    // 100 ms in, Close counted 7: our first and six of others, four beyond their reserve.
    // Left 33, of which half is 16; at their pace (six per 125 ms at least) they take
    // more than that before the end: nothing more for us.
    let view = counted(&mut g, 100, &ours[0], 7, false);
    assert_eq!(view.remaining, 0);
    let token = S / 40;
    let (answer, _) = acquire(&mut g, S + 100 * MS, &ask(LOW, 1), &p);
    assert_eq!(
        answer,
        Answer::Wait {
            until: S + 100 * MS + token,
            why: Why::Full
        }
    );
    // 600 ms in, our second call: they took nothing more. Left 32, half is ours.
    let view = counted(&mut g, 600, &ours[1], 8, false);
    assert_eq!(view.remaining, 16);
}

/// Others that stopped taking more for six times their pace (a group of ours whose backlog
/// ran out) keep only what they took: the rest of their share is ours for the rest of the
/// window.
#[test]
fn others_that_stopped_keep_only_what_they_took() {
    let p = params();
    let mut g = learned(40, S);
    seen_before(&mut g);
    let ours = granted(acquire(&mut g, S, &ask(HIGH, 3), &p).0);
    // The previous window: others took 20 (a pace of one per 50 ms).
    g.keys[0].fres = 20;
    // 100 ms in, Close counted 6: our first and five of others.
    counted(&mut g, 100, &ours[0], 6, false);
    // 200 ms in, they still grow: seven of theirs. The 20 stay kept for them.
    let view = counted(&mut g, 200, &ours[1], 9, false);
    assert_eq!(view.remaining, 40 - 20 - 3);
    // 600 ms in, nothing more of theirs for 400 ms: they took 7, the other 13 are ours.
    let view = counted(&mut g, 600, &ours[2], 10, false);
    assert_eq!(view.remaining, 40 - 7 - 3);
}

/// Another client of the key (no group of ours may be counted in the bucket: `alone`) keeps
/// its pace: what it took and its pace for the time left are kept, and once it took nothing
/// for twice its pace it stopped: what it took is all that is kept. While others may be
/// groups of ours, whose calls come in bursts, all of their share is kept for six times
/// their pace; one answer that says so (another replica knows such a group) holds for two
/// windows.
#[test]
fn another_client_keeps_its_pace_and_leaves_the_rest_when_it_stops() {
    let p = params();
    for (first, later, kept_late) in [(true, true, 7), (false, false, 20), (false, true, 20)] {
        let mut g = learned(40, S);
        seen_before(&mut g);
        let ours = granted(acquire(&mut g, S, &ask(HIGH, 4), &p).0);
        // The previous window: others took 20 (a pace of one per 50 ms). The first answer
        // (`learned`) did not come alone: forget it.
        g.keys[0].fres = 20;
        g.keys[0].kin = 0;
        // 200 ms in, Close counted 9: two of ours, seven of theirs. At their pace they take
        // 16 more, beyond the 20 of the previous window: all 20 stay kept.
        counted(&mut g, 100, &ours[0], 6, first);
        let view = counted(&mut g, 200, &ours[1], 9, later);
        assert_eq!(view.remaining, 40 - 20 - 4, "{first} {later}");
        // 290 ms in, nothing more of theirs for 90 ms, less than twice their pace. Another
        // client: 7 and its pace for the 710 ms left, 15, are more than the 20: all kept.
        let view = counted(&mut g, 290, &ours[2], 10, later);
        assert_eq!(view.remaining, 40 - 20 - 4, "{first} {later}");
        // 450 ms in, nothing more for 250 ms. Another client stopped: its 7 are kept. Maybe
        // ours: all 20 (not yet six times their pace).
        let view = counted(&mut g, 450, &ours[3], 11, later);
        assert_eq!(view.remaining, 40 - kept_late - 4, "{first} {later}");
    }
}

/// A client that stopped in the previous window takes nothing in this one: its pace is
/// kept for the time left until the answers show nothing of it for twice its pace from the
/// window's start; then the window is ours (23 of 24 in the benchmark's window after the
/// client stopped before). While others may be groups of ours, their pace is kept to the
/// end.
#[test]
fn a_client_gone_before_this_window_leaves_it_after_twice_its_pace() {
    let p = params();
    for (alone, kept_late) in [(true, 0), (false, 17)] {
        let mut g = learned(40, S);
        seen_before(&mut g);
        let ours = granted(acquire(&mut g, S, &ask(HIGH, 2), &p).0);
        // The previous window: others took 20 (a pace of one per 50 ms).
        g.keys[0].fres = 20;
        g.keys[0].kin = 0;
        // 50 ms in, Close counted our first call only: their pace for the 950 ms left, 19.
        let view = counted(&mut g, 50, &ours[0], 1, alone);
        assert_eq!(view.remaining, 40 - 19 - 2, "{alone}");
        // 150 ms in, still nothing of theirs. Another client stopped: nothing is kept. Maybe
        // ours: their pace for the 850 ms left, 17.
        let view = counted(&mut g, 150, &ours[1], 2, alone);
        assert_eq!(view.remaining, 40 - kept_late - 2, "{alone}");
    }
}

/// In a window without history, another group of ours that Close counts in the same
/// bucket may book the same room at the same time, and only answers show it. A call booked
/// in the last two round trips before the window's usable end cannot be answered in time:
/// nothing is booked there. A window with history books there as before.
#[test]
fn a_window_without_history_books_nothing_its_answers_cannot_check() {
    let p = params();
    // The probe came back after 4 ms with 10 ms of the window left: guard 4 ms, usable
    // until 6 ms from now, no slot at least 8 ms before that.
    let mut g = one_key();
    let probe = granted(acquire(&mut g, 0, &ask(LOW, 1), &p).0)[0];
    let o = Obs {
        rtt: 4 * MS,
        ..header(&probe, 16, 15, 10 * MS)
    };
    observe(&mut g, 4 * MS, &o, &p);
    assert_eq!(
        acquire(&mut g, 4 * MS, &ask(HIGH, 16), &p).0,
        Answer::Wait {
            until: 14 * MS,
            why: Why::Full
        }
    );
    // Only the probe went in this window: the next is on guard against others as a first
    // one is, without history.
    let next = granted(acquire(&mut g, 14 * MS, &ask(LOW, 1), &p).0)[0];
    assert_eq!((g.keys[0].hist, g.keys[0].pcmax), (0, 0));
    // One call in a whole window is history: a group that makes few calls is not held to
    // the tail rule window after window.
    observe(&mut g, 15 * MS, &header(&next, 16, 15, S - MS), &p);
    granted(acquire(&mut g, 14 * MS + S, &ask(LOW, 1), &p).0);
    assert_eq!((g.keys[0].hist, g.keys[0].pcmax), (1, 1));

    // A window with history and the same time left books there.
    let mut g = learned(16, S);
    seen_before(&mut g);
    g.keys[0].rtt = 4 * MS;
    let grants = granted(acquire(&mut g, S - 10 * MS, &ask(HIGH, 1), &p).0);
    assert_eq!(grants[0].at, S - 10 * MS);
}

/// A client that appeared late in the previous window, which then filled before its end
/// (Close refused the client's later calls, so it counted fewer of them than it sends): the
/// room kept for it follows its count so far, scaled to the whole window, beyond that
/// window's reserve. Not when the previous window was answered to its end.
#[test]
fn a_client_refused_in_the_window_before_is_kept_its_pace_not_its_count() {
    let p = params();
    for (cut, kept) in [(true, 10), (false, 8)] {
        let mut g = learned(40, S);
        seen_before(&mut g);
        let ours = granted(acquire(&mut g, S, &ask(HIGH, 2), &p).0);
        g.keys[0].fres = 8;
        g.keys[0].kin = 0;
        // The previous window's last answer came 300 ms (or 10 ms) before its end.
        g.keys[0].ptobs = if cut { S - 300 * MS } else { S - 10 * MS };
        // 400 ms in, four of theirs: scaled over three quarters of the window, 6 of 8.
        counted(&mut g, 400, &ours[0], 5, true);
        // 800 ms in, eight of theirs: 10 over the window, and their pace for the 200 ms
        // left adds 2.
        let view = counted(&mut g, 800, &ours[1], 10, true);
        assert_eq!(view.remaining, 40 - kept - 2, "{cut}");
    }
}
