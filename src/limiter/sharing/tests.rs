use super::*;

fn info(limit: u64, remaining: u64, reset: Duration) -> RateLimitInfo {
    RateLimitInfo {
        limit: Some(limit),
        remaining: Some(remaining),
        reset: Some(reset),
        ..RateLimitInfo::default()
    }
}

/// `windows` one-second windows of Close with limit 40 for two groups, counted in one bucket
/// (`shared`) or in one each, each group sending `per_window` calls per window, in turns,
/// evenly spaced; this replica answers one call in `every`, picked at random (which replica
/// serves a call depends on which caller sent it, not on Close's count).
fn run(sharing: &Sharing, shared: bool, windows: u32, per_window: u64, every: u64) -> usize {
    let start = Instant::now();
    let groups = ["task.write", "activity.write"];
    let mut found = 0;
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for w in 0..windows {
        let mut counts = [0u64; 2];
        let calls = per_window * 2;
        for c in 0..calls {
            let g = (c % 2) as usize;
            let at = Duration::from_secs(u64::from(w)) + Duration::from_millis(c * 1000 / calls);
            let count = if shared {
                c + 1
            } else {
                counts[g] += 1;
                counts[g]
            };
            let end = Duration::from_secs(u64::from(w) + 1);
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            if (seed >> 33) % every != 0 {
                continue;
            }
            let answer = info(40, 40 - count, end - at);
            let seen = sharing.record(groups[g], start + at, start + at, 200, &answer);
            found += seen
                .iter()
                .filter(|s| matches!(s, Seen::Together(..)))
                .count();
        }
    }
    found
}

#[test]
fn two_groups_counted_together_are_suspected_after_a_few_windows() {
    let sharing = Sharing::default();
    // 20 calls each per window, a third of them answered on this replica.
    assert_eq!(run(&sharing, true, 4, 20, 3), 0);
    assert_eq!(run(&sharing, true, 8, 20, 3), 1);
    assert_eq!(sharing.partners("task.write"), ["activity.write"]);
    assert_eq!(sharing.partners("activity.write"), ["task.write"]);
    assert!(sharing.partners("lead.read").is_empty());
}

#[test]
fn two_groups_counted_apart_are_not() {
    let sharing = Sharing::default();
    assert_eq!(run(&sharing, false, 30, 20, 3), 0);
    assert!(sharing.partners("task.write").is_empty());
}

#[test]
fn a_count_seen_twice_clears_a_suspicion() {
    let sharing = Sharing::default();
    run(&sharing, true, 12, 20, 3);
    assert_eq!(sharing.partners("task.write"), ["activity.write"]);
    run(&sharing, false, 2, 20, 1);
    assert!(sharing.partners("task.write").is_empty());
}

#[test]
fn answers_without_a_count_are_ignored() {
    let sharing = Sharing::default();
    let now = Instant::now();
    let throttled = info(40, 0, Duration::from_millis(300));
    assert_eq!(sharing.record("a", now, now, 429, &throttled), []);
    assert_eq!(
        sharing.record("a", now, now, 200, &RateLimitInfo::default()),
        []
    );
    assert!(sharing.state.lock().expect("state").windows.is_empty());
}

#[test]
fn a_group_is_alone_once_every_group_with_its_limit_and_window_was_seen_counted_apart() {
    let sharing = Sharing::default();
    // Nothing known yet.
    assert!(!sharing.alone("task.write", Instant::now()));
    // Counted together: never alone, suspected or not yet.
    run(&sharing, true, 2, 20, 3);
    assert!(!sharing.alone("task.write", Instant::now()));
    run(&sharing, true, 10, 20, 3);
    assert!(!sharing.alone("activity.write", Instant::now()));
    // Counted apart: alone from the first window whose counts collide.
    run(&sharing, false, 2, 20, 1);
    assert!(sharing.alone("task.write", Instant::now()));
    assert!(sharing.alone("activity.write", Instant::now()));
    // Counted together again: alone no longer once suspected.
    run(&sharing, true, 12, 20, 3);
    assert_eq!(sharing.partners("task.write"), ["activity.write"]);
    assert!(!sharing.alone("task.write", Instant::now()));
}

#[test]
fn a_group_with_no_other_of_its_limit_is_alone() {
    let sharing = Sharing::default();
    let now = Instant::now();
    let reset = Duration::from_millis(600);
    // Not before a whole window of it was seen: another group of ours may not have
    // answered yet.
    let earlier = now - Duration::from_secs(1);
    sharing.record("lead.read", earlier, earlier, 200, &info(24, 20, reset));
    assert!(!sharing.alone("lead.read", Instant::now()));
    sharing.record("lead.read", now, now, 200, &info(24, 20, reset));
    assert!(sharing.alone("lead.read", Instant::now()));
    sharing.record("task.read", now, now, 200, &info(64, 60, reset));
    assert!(sharing.alone("lead.read", Instant::now()));
    // Same limit, window ending 300 ms apart: another window of Close, another bucket.
    sharing.record(
        "lead.write",
        now,
        now + Duration::from_millis(300),
        200,
        &info(24, 20, reset),
    );
    assert!(sharing.alone("lead.read", Instant::now()));
    // Same limit and window: maybe one bucket, till counts collide.
    sharing.record("search", now, now, 200, &info(24, 19, reset));
    assert!(!sharing.alone("lead.read", Instant::now()));
}

#[test]
fn a_call_sent_after_another_groups_answer_with_no_higher_count_proves_two_buckets() {
    let sharing = Sharing::default();
    let t = Instant::now();
    let ms = Duration::from_millis;
    // One window, ending at t + 900 ms, for every answer below.
    let answer = |at: u64, count: u64| info(40, 40 - count, ms(900 - at));
    assert_eq!(sharing.record("a", t, t + ms(10), 200, &answer(10, 5)), []);
    // Sent before a's answer came: a lower count says nothing.
    assert_eq!(
        sharing.record("b", t + ms(5), t + ms(20), 200, &answer(20, 3)),
        []
    );
    // Sent after it, counted after it: as in one bucket.
    assert_eq!(
        sharing.record("b", t + ms(11), t + ms(30), 200, &answer(30, 6)),
        []
    );
    assert!(!sharing.alone("a", Instant::now()));
    // Sent after it, counted before it: two buckets, before any count collided.
    assert_eq!(
        sharing.record("b", t + ms(12), t + ms(40), 200, &answer(40, 4)),
        [Seen::Apart("a".to_owned(), "b".to_owned())]
    );
    // Alone once this replica saw a whole window of each.
    let next = |at: u64| info(40, 39, ms(1900 - at));
    sharing.record("a", t + ms(1000), t + ms(1010), 200, &next(1010));
    sharing.record("b", t + ms(1000), t + ms(1020), 200, &next(1020));
    assert!(sharing.alone("a", Instant::now()));
    assert!(sharing.alone("b", Instant::now()));
}

/// Replicas that take turns: each sees every third count of each group. Counts of two
/// buckets then may never collide on one replica; their order still tells.
#[test]
fn two_buckets_whose_counts_a_replica_sees_never_collide_are_told_apart_by_order() {
    let sharing = Sharing::default();
    let t = Instant::now();
    let ms = Duration::from_millis;
    let mut apart = 0;
    for w in 0..10u64 {
        let start = t + Duration::from_secs(w);
        let end = start + Duration::from_secs(1);
        for k in 0..12u64 {
            // Both buckets count at one pace; this replica sees a's counts 2, 5, 8, ... and
            // b's 1, 4, 7, ... a little later: never the same count, b's lower each time.
            for (group, count, at) in [("a", 3 * k + 2, 10), ("b", 3 * k + 1, 50)] {
                let at = start + ms(80 * k + at);
                let answer = info(40, 40 - count, end - at);
                let seen = sharing.record(group, at - ms(5), at, 200, &answer);
                apart += seen.iter().filter(|s| matches!(s, Seen::Apart(..))).count();
                assert!(
                    !seen.iter().any(|s| matches!(s, Seen::Together(..))),
                    "window {w}"
                );
            }
        }
    }
    assert!(sharing.partners("a").is_empty());
    assert!(sharing.alone("a", Instant::now()));
    assert!(apart >= 10, "{apart}");
}

/// A group active only on another replica (published through `peers.rs`) may share the
/// bucket: this replica sees none of its counts, so nothing proves them apart.
#[test]
fn a_group_another_replica_serves_in_the_same_window_is_not_alone() {
    let sharing = Sharing::default();
    let t = Instant::now();
    let ms = Duration::from_millis;
    sharing.record("a", t, t, 200, &info(24, 20, ms(600)));
    sharing.record("a", t + ms(1000), t + ms(1000), 200, &info(24, 20, ms(600)));
    let now = t + ms(1100);
    assert!(sharing.alone("a", now));
    // Published windows: a's own on another replica, another limit, another window end.
    let heard = |group: &str, limit, end| Heard {
        group: group.to_owned(),
        limit,
        end,
        counts: BTreeSet::new(),
        same_state: true,
    };
    sharing.heard(
        now,
        vec![
            heard("a", 24, t + ms(1600)),
            heard("b", 25, t + ms(1600)),
            heard("c", 24, t + ms(1900)),
        ],
    );
    assert!(sharing.alone("a", now));
    // Same limit, a window ending 100 ms from a's current one (or its last).
    sharing.heard(now, vec![heard("b", 24, t + ms(1700))]);
    assert!(!sharing.alone("a", now));
    sharing.heard(now, vec![heard("b", 24, t + ms(500))]);
    assert!(!sharing.alone("a", now));
    // What was heard is believed for `LIFETIME` only.
    assert!(!sharing.alone("a", now + LIFETIME - ms(1)));
    assert!(sharing.alone("a", now + LIFETIME));
    // Seen counted apart on this replica: alone, whoever serves b elsewhere.
    sharing.heard(now, vec![heard("b", 24, t + ms(1700))]);
    sharing.record("b", t + ms(1050), t + ms(1050), 200, &info(24, 20, ms(550)));
    assert!(sharing.alone("a", now));
}

/// What a replica publishes: each group's windows not over for `LIFETIME`; a group new to
/// it makes the next exchange due at once.
#[test]
fn a_replica_publishes_its_recent_windows() {
    let sharing = Sharing::default();
    let t = Instant::now();
    let ms = Duration::from_millis;
    assert!(!sharing.fresh());
    sharing.record("a", t, t, 200, &info(24, 20, ms(600)));
    assert!(sharing.fresh());
    sharing.record("a", t + ms(1000), t + ms(1000), 200, &info(24, 20, ms(600)));
    let mut latest = sharing.latest(t + ms(1100));
    latest.sort();
    assert_eq!(
        latest,
        [
            ("a".to_owned(), 0, 24, t + ms(1600), vec![4]),
            ("a".to_owned(), 1, 24, t + ms(600), vec![4])
        ]
    );
    assert!(!sharing.fresh());
    sharing.record("a", t + ms(1200), t + ms(1200), 200, &info(24, 19, ms(400)));
    assert!(!sharing.fresh(), "a known group");
    assert_eq!(sharing.latest(t + ms(2600)).len(), 1);
    assert!(sharing.latest(t + ms(3600)).is_empty());
}

/// Answers of group `a` in the one-second window from `start`, limit 40: counts 1, 3, ...,
/// 19, 50 ms apart.
fn odd_counts(sharing: &Sharing, start: Instant) {
    for c in 0..10u64 {
        let at = start + Duration::from_millis(50 * c);
        let answer = info(40, 40 - (2 * c + 1), start + Duration::from_secs(1) - at);
        sharing.record("a", at, at, 200, &answer);
    }
}

/// Counts other replicas saw are pooled with this replica's: a pair is judged on every
/// count of a window, as if one replica had seen both groups; a window judged again on
/// more counts adds only the difference.
#[test]
fn a_pair_is_judged_on_the_counts_every_replica_saw() {
    let sharing = Sharing::default();
    let t = Instant::now();
    let ms = Duration::from_millis;
    let b_window = |end: Instant, counts: &[u64]| Heard {
        group: "b".to_owned(),
        limit: 40,
        end,
        counts: counts.iter().copied().collect(),
        same_state: true,
    };
    // Two windows of a seen here: counts 1, 3, ..., 19; b's, heard: 2, 4, ..., 32. Each
    // pair of windows without a collision is 10 × 16 / 40 = 4 expected collisions.
    let b_counts: Vec<u64> = (1..=16).map(|c| 2 * c).collect();
    for w in 0..2u64 {
        let start = t + ms(1000 * w);
        odd_counts(&sharing, start);
        let end = start + ms(1000);
        // Heard first with a quarter of b's counts, then all, then all again.
        let now = start + ms(600);
        let quarter = sharing.heard(now, vec![b_window(end, &b_counts[..4])]);
        let all = sharing.heard(now + ms(250), vec![b_window(end, &b_counts)]);
        let again = sharing.heard(now + ms(500), vec![b_window(end, &b_counts)]);
        if w == 0 {
            assert_eq!(
                (quarter, all, again),
                (vec![], vec![], vec![]),
                "4 of 6 expected"
            );
        } else {
            let together = Seen::Together("a".to_owned(), "b".to_owned());
            assert_eq!(
                (quarter, all, again),
                (vec![], vec![together], vec![]),
                "8 of 6"
            );
        }
    }
    assert_eq!(sharing.partners("a"), ["b"]);
    // One count both saw: two buckets.
    let end = t + ms(2000);
    let at = end - ms(400);
    sharing.record("a", at, at, 200, &info(40, 40 - 4, ms(400)));
    let seen = sharing.heard(at, vec![b_window(end, &[4])]);
    assert!(
        seen.contains(&Seen::Apart("a".to_owned(), "b".to_owned())),
        "{seen:?}"
    );
}

/// Counts other replicas publish late for the window before still count: a pair keeps the
/// evidence of its last two windows, each topped up as more counts come.
#[test]
fn late_counts_of_the_window_before_still_count() {
    let sharing = Sharing::default();
    let t = Instant::now();
    let ms = Duration::from_millis;
    let b = |end: Instant, counts: std::ops::RangeInclusive<u64>| Heard {
        group: "b".to_owned(),
        limit: 40,
        end,
        counts: counts.filter(|c| c % 2 == 0).collect(),
        same_state: true,
    };
    let together = || vec![Seen::Together("a".to_owned(), "b".to_owned())];
    // a's counts 1, 3, ..., 19 in each of two windows; b's even ones, heard bit by bit.
    let window = |w: u64| {
        let start = t + ms(1000 * w);
        odd_counts(&sharing, start);
    };
    let (w0, w1) = (t + ms(1000), t + ms(2000));
    window(0);
    // 10 × 4 / 40: 1 expected collision.
    assert_eq!(sharing.heard(t + ms(900), vec![b(w0, 2..=8)]), []);
    window(1);
    // Window 0 now 2, window 1 0.5: 2.5.
    assert_eq!(
        sharing.heard(t + ms(1100), vec![b(w0, 2..=16), b(w1, 2..=4)]),
        []
    );
    // Window 0, whose counts came after window 1 was judged, now 4: 4.5.
    assert_eq!(
        sharing.heard(t + ms(1300), vec![b(w0, 2..=32), b(w1, 2..=4)]),
        []
    );
    // Window 1 now 3: 7, of 6 to suspect the pair.
    assert_eq!(sharing.heard(t + ms(1500), vec![b(w1, 2..=24)]), together());
}

/// During a rolling update, replicas of the other version serve the same group in another
/// state: their calls are, to ours, another group's in one bucket, which no count can prove
/// apart. Windows of another state are never judged as a pair with ours, but a pair seen
/// apart is apart in any state.
#[test]
fn windows_of_another_state_count_for_alone_only() {
    let sharing = Sharing::default();
    let t = Instant::now();
    let ms = Duration::from_millis;
    odd_counts(&sharing, t);
    odd_counts(&sharing, t + ms(1000));
    let now = t + ms(1600);
    assert!(sharing.alone("a", now));
    let window = |group: &str, end: u64, counts: &[u64], same_state| Heard {
        group: group.to_owned(),
        limit: 40,
        end: t + ms(end),
        counts: counts.iter().copied().collect(),
        same_state,
    };
    let evens: Vec<u64> = (1..=20).map(|c| 2 * c).collect();
    assert_eq!(
        sharing.heard(now, vec![window("a", 2000, &evens, true)]),
        []
    );
    assert!(sharing.alone("a", now), "another replica of ours");
    assert_eq!(
        sharing.heard(now, vec![window("a", 2000, &evens, false)]),
        []
    );
    assert!(!sharing.alone("a", now), "another version's");
    // b from another state: 10 × 20 / 40 = 5 expected collisions in each of a's two windows,
    // none seen (10 of 6 would suspect a pair of one state); then b's count 3, which a's
    // collides with (two buckets, for a pair of one state).
    let b = |counts: &[u64]| {
        vec![
            window("b", 1000, counts, false),
            window("b", 2000, counts, false),
        ]
    };
    assert_eq!(sharing.heard(now, b(&evens)), []);
    assert!(sharing.partners("a").is_empty());
    assert_eq!(sharing.heard(now, b(&[3])), []);
    assert!(!sharing.alone("a", now));
    // Seen apart here (sent after a's count 1 came back, counted 1), b is apart in any state.
    sharing.record("b", t + ms(1700), t + ms(1700), 200, &info(40, 39, ms(300)));
    sharing.heard(now, b(&evens));
    assert!(sharing.alone("a", now));
}
