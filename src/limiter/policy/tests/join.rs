//! Two groups of ours in one Close bucket served as one (`join.rs`).

use super::others::a_window_shared_half_and_half;
use super::*;

/// Close counted 10 calls of others with ours in the window ending at `S` (the host's,
/// were the two one bucket).
fn others_counted(g: &mut GroupState) {
    let p = params();
    let ours = granted(acquire(g, 50 * MS, &ask(HIGH, 1), &p).0)[0];
    observe(g, 60 * MS, &header(&ours, 40, 28, S - 60 * MS), &p);
}

#[test]
fn a_group_joins_only_when_close_counted_others_with_it() {
    let mut g = learned(40, S);
    seen_before(&mut g);
    // Only our own calls so far: counted apart from any host.
    assert_eq!(join(&mut g, 100 * MS, "activity.write"), 0);
    assert_eq!((g.keys[0].moved, g.host.as_str()), (0, ""));
    others_counted(&mut g);
    assert_eq!(join(&mut g, 100 * MS, "activity.write"), S);
}

#[test]
fn a_joined_group_grants_nothing_from_the_end_of_its_window_and_names_its_host() {
    let p = params();
    let mut g = learned(40, S);
    seen_before(&mut g);
    others_counted(&mut g);
    assert_eq!(join(&mut g, 100 * MS, "activity.write"), S);
    // Joined already: nothing changes, and the caller leaves the host alone.
    assert_eq!(join(&mut g, 200 * MS, "task.write"), 0);
    // Before the end of the window, the group's own room is still served.
    let before = granted(acquire(&mut g, 200 * MS, &ask(HIGH, 5), &p).0);
    assert_eq!(before.len(), 5);
    assert!(before.iter().all(|grant| grant.at < S));
    let (answer, view) = acquire(&mut g, S, &ask(LOW, 5), &p);
    assert_eq!(
        answer,
        Answer::Wait {
            until: S,
            why: Why::Moved
        }
    );
    assert_eq!(view.host, "activity.write");
    // Low calls booking ahead stop short of the move too.
    let mut g = learned(40, S);
    seen_before(&mut g);
    others_counted(&mut g);
    join(&mut g, 990 * MS, "activity.write");
    let (answer, _) = acquire(&mut g, 990 * MS, &ask(LOW, 40), &p);
    if let Answer::Granted(grants, _) = &answer {
        assert!(grants.iter().all(|grant| grant.at < S), "{answer:?}");
    }
    leave(&mut g, S);
    let again = granted(acquire(&mut g, S, &ask(HIGH, 5), &p).0);
    assert_eq!(again.len(), 5);
    assert!(g.host.is_empty());
}

#[test]
fn the_host_forgets_what_others_took_for_two_windows_from_the_adoption() {
    let p = params();
    let room = |g: &GroupState| g.keys[0].cap - g.keys[0].base;
    // Others (the guest) took 19 of 40 in the window ending at S: without adoption, the
    // next window keeps 20 of them.
    let (mut g, _) = a_window_shared_half_and_half();
    acquire(&mut g, S, &ask(HIGH, 1), &p);
    assert_eq!(room(&g), 20);
    let (mut g, late) = a_window_shared_half_and_half();
    adopt(&mut g, 500 * MS, S);
    let mut ours = granted(acquire(&mut g, S, &ask(HIGH, 1), &p).0);
    assert_eq!((room(&g), g.keys[0].fres), (40, 0));
    // The late answer of the window before counts none of its calls as others'.
    observe(&mut g, S + MS, &header(&late, 40, 0, MS), &p);
    assert_eq!((room(&g), g.keys[0].fres), (40, 0));
    // The guest's last calls reach Close in the first adopted window: two calls of others.
    ours.extend(take(&mut g, S + MS, HIGH, 29));
    for (j, grant) in ours.iter().enumerate() {
        let at = S + 10 * MS + 20 * MS * j as i64;
        let count = 3 + j as i64;
        observe(&mut g, at, &header(grant, 40, 40 - count, 2 * S - at), &p);
    }
    assert_eq!(g.keys[0].cmax - g.keys[0].nobs, 2);
    // The second window keeps no room for them.
    let mut ours = granted(acquire(&mut g, 2 * S, &ask(HIGH, 1), &p).0);
    assert_eq!((room(&g), g.keys[0].fres, g.keys[0].adopt), (40, 0, 0));
    // From the third on, others are others again.
    ours.extend(take(&mut g, 2 * S + MS, HIGH, 29));
    for (j, grant) in ours.iter().enumerate() {
        let at = 2 * S + 10 * MS + 20 * MS * j as i64;
        let count = 3 + j as i64;
        observe(&mut g, at, &header(grant, 40, 40 - count, 3 * S - at), &p);
    }
    acquire(&mut g, 3 * S, &ask(HIGH, 1), &p);
    assert!(g.keys[0].fres >= 2, "{:?}", g.keys[0]);
    assert!(room(&g) <= 38, "{:?}", g.keys[0]);
}
