//! Key pools: one probe for the whole group, the organization's cap, and answers that
//! speak of the organization rather than the key.

use super::*;

/// Learns the limits of a pool's keys (`limits[k]` for key `k`, windows ending at 1 s): one
/// probe for the whole group until its answer, at 1 ms, then one per other key at once.
fn learn_pool(g: &mut GroupState, limits: &[i64], p: &Params) {
    let first = granted(acquire(g, 0, &ask(HIGH, 10), p).0);
    assert_eq!((first.len(), first[0].key, first[0].probe), (1, 0, true));
    let (answer, _) = acquire(g, MS / 2, &ask(HIGH, 1), p);
    assert!(
        matches!(
            answer,
            Answer::Wait {
                why: Why::Probe,
                ..
            }
        ),
        "{answer:?}"
    );
    observe(
        g,
        MS,
        &header(&first[0], limits[0], limits[0] - 1, S - MS),
        p,
    );
    let rest = granted(acquire(g, MS, &ask(HIGH, limits.len() as i64 - 1), p).0);
    let keys: Vec<usize> = rest.iter().map(|r| r.key).collect();
    assert_eq!(keys, (1..limits.len()).collect::<Vec<_>>());
    for probe in &rest {
        assert!(probe.probe);
        let limit = limits[probe.key];
        observe(g, MS, &header(probe, limit, limit - 1, S - MS), p);
    }
}

#[test]
fn a_pool_spreads_over_keys_under_the_org_cap() {
    let p = params();
    let mut g = pool(4);
    learn_pool(&mut g, &[10; 4], &p);
    seen_before(&mut g);
    // Keys have 9 each (36); the org (3 x 10 = 30, margin 0) has 26 after the 4 probes.
    let grants = granted(acquire(&mut g, MS, &ask(HIGH, 100), &p).0);
    assert_eq!(grants.len(), 26);
    let mut per_key = [0; 4];
    for grant in &grants {
        per_key[grant.key] += 1;
    }
    assert!(per_key.iter().all(|&n| n <= 9), "{per_key:?}");
}

#[test]
fn the_org_cap_is_three_times_the_smallest_key_limit_unless_configured() {
    // Keys of 10, 6, 10 and 10 per second have 9, 5, 9 and 9 left after their probes.
    for (org_limit, expect) in [(0, 18 - 4), (12, 12 - 4), (100, 32)] {
        let p = Params {
            org_limit,
            ..params()
        };
        let mut g = pool(4);
        learn_pool(&mut g, &[10, 6, 10, 10], &p);
        seen_before(&mut g);
        let grants = granted(acquire(&mut g, MS, &ask(HIGH, 100), &p).0);
        assert_eq!(grants.len(), expect, "org limit {org_limit}");
        let mut per_key = [0; 4];
        for grant in &grants {
            per_key[grant.key] += 1;
        }
        assert!(per_key[1] <= 5, "{per_key:?}");
        assert!(per_key.iter().all(|&n| n <= 9), "{per_key:?}");
    }
}

/// Close's header states whichever limit the call came closest to; in a pool, one that is
/// the organization's (3 x 10) is the organization's, not a raised key limit.
#[test]
fn a_header_with_the_org_limit_is_the_orgs() {
    let p = params();
    let mut g = pool(2);
    learn_pool(&mut g, &[10, 10], &p);
    seen_before(&mut g);
    let calls = granted(acquire(&mut g, MS, &ask(HIGH, 2), &p).0);
    assert_eq!(calls.len(), 2);
    // The organization has 3 left, of which our second call, not answered yet, may take
    // one. Our other three calls, answered for their keys, are ours in its count too.
    let view = observe(&mut g, 2 * MS, &header(&calls[0], 30, 3, S - 2 * MS), &p);
    assert_eq!(g.keys[calls[0].key].lim, 10);
    // Close still counts the key: its limit stays learned as long as that goes on.
    assert_eq!(g.keys[calls[0].key].lexp, 2 * MS + p.learned_ttl);
    assert_eq!((g.org.as_ref().map(|o| (o.lim, o.lsrc))), Some((30, 2)));
    assert_eq!((view.lim, view.remaining), (20, 2));
    let grants = granted(acquire(&mut g, 2 * MS, &ask(HIGH, 20), &p).0);
    assert_eq!(grants.len(), 2);

    // A key whose limit is unknown learns it from any header, or it never would.
    let mut g = pool(2);
    learn_pool(&mut g, &[10, 30], &p);
    assert_eq!(g.keys[1].lim, 30);
}

/// An answer that speaks of the organization (the legacy body says so) teaches it, not the
/// key: from then on each key probes its own, not one for the whole pool per round trip.
#[test]
fn keys_probe_on_their_own_once_the_org_limit_is_known() {
    let p = params();
    let mut g = pool(2);
    let first = granted(acquire(&mut g, 0, &ask(HIGH, 2), &p).0);
    assert_eq!(first.len(), 1);
    let mut typed = header(&first[0], 30, 29, S - MS);
    typed.org_typed = true;
    observe(&mut g, MS, &typed, &p);
    assert_eq!(
        (g.keys[0].lim, g.org.as_ref().map(|o| o.lim)),
        (0, Some(30))
    );
    let probes = granted(acquire(&mut g, MS, &ask(HIGH, 2), &p).0);
    let keys: Vec<(usize, bool)> = probes.iter().map(|g| (g.key, g.probe)).collect();
    assert_eq!(keys, [(0, true), (1, true)]);
}
