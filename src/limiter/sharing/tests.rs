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
    assert!(!sharing.alone("task.write"));
    // Counted together: never alone, suspected or not yet.
    run(&sharing, true, 2, 20, 3);
    assert!(!sharing.alone("task.write"));
    run(&sharing, true, 10, 20, 3);
    assert!(!sharing.alone("activity.write"));
    // Counted apart: alone from the first window whose counts collide.
    run(&sharing, false, 2, 20, 1);
    assert!(sharing.alone("task.write"));
    assert!(sharing.alone("activity.write"));
    // Counted together again: alone no longer once suspected.
    run(&sharing, true, 12, 20, 3);
    assert_eq!(sharing.partners("task.write"), ["activity.write"]);
    assert!(!sharing.alone("task.write"));
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
    assert!(!sharing.alone("lead.read"));
    sharing.record("lead.read", now, now, 200, &info(24, 20, reset));
    assert!(sharing.alone("lead.read"));
    sharing.record("task.read", now, now, 200, &info(64, 60, reset));
    assert!(sharing.alone("lead.read"));
    // Same limit, window ending 300 ms apart: another window of Close, another bucket.
    sharing.record(
        "lead.write",
        now,
        now + Duration::from_millis(300),
        200,
        &info(24, 20, reset),
    );
    assert!(sharing.alone("lead.read"));
    // Same limit and window: maybe one bucket, till counts collide.
    sharing.record("search", now, now, 200, &info(24, 19, reset));
    assert!(!sharing.alone("lead.read"));
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
    assert!(!sharing.alone("a"));
    // Sent after it, counted before it: two buckets, before any count collided.
    assert_eq!(
        sharing.record("b", t + ms(12), t + ms(40), 200, &answer(40, 4)),
        [Seen::Apart("a".to_owned(), "b".to_owned())]
    );
    // Alone once this replica saw a whole window of each.
    let next = |at: u64| info(40, 39, ms(1900 - at));
    sharing.record("a", t + ms(1000), t + ms(1010), 200, &next(1010));
    sharing.record("b", t + ms(1000), t + ms(1020), 200, &next(1020));
    assert!(sharing.alone("a"));
    assert!(sharing.alone("b"));
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
    assert!(sharing.alone("a"));
    assert!(apart >= 10, "{apart}");
}
