//! Sweeps of the closed-loop simulations over limits, phases and start times, the figures
//! behind the tuning in `docs/limiter.md`. Each prints the runs that miss a target and a
//! total; none asserts (the cases that must hold are in `limiter_shared.rs` and
//! `limiter_sim.rs`). Ignored by default, as they take a minute:
//! `cargo test --release --test limiter_sweeps -- --ignored --nocapture --test-threads=1`
//! (every line names its sweep, as they may also run at once).

mod limiter_support;

use limiter_support::mix::{benchmark_mix, misses_beside_a_client};
use limiter_support::pair::{shared_in, split};
use limiter_support::rollout::{Rollout, rollout};
use limiter_support::sim::BucketOutcome;

/// 429s in any window, and windows below 95 % of `limit` from the third to the last but
/// one.
fn misses(bucket: &BucketOutcome, limit: u64) -> (u64, Vec<(u64, u64)>) {
    let rejected = bucket.windows.values().map(|w| w.1).sum();
    let last = bucket.windows.keys().max().copied().unwrap_or_default();
    let least = (limit * 95).div_ceil(100);
    let short = bucket
        .windows
        .range(2..last)
        .filter(|(_, w)| w.0 < least)
        .map(|(index, w)| (*index, w.0))
        .collect();
    (rejected, short)
}

/// Two groups in one undeclared bucket (`together`), or in two of the same limit and
/// windows, every call alternating between them: ten windows' worth of calls per bucket.
/// Apart, also the runs at whose end a replica suspects the two share a bucket.
async fn pair_sweep(sweep: &str, together: bool, limits: &[u64]) {
    let (mut rejected, mut short, mut suspected, mut runs) = (0, 0, 0, 0);
    for &limit in limits {
        for phase in (0..1000).step_by(45) {
            let calls = limit as usize * if together { 10 } else { 20 };
            let (buckets, replicas) = shared_in(limit, phase, calls, 0, together).await;
            for (name, bucket) in &buckets {
                let (n, low) = misses(bucket, limit);
                if n > 0 || !low.is_empty() {
                    println!(
                        "{sweep}: limit {limit} phase {phase} {name}: 429s {n}, below 95 % {low:?}"
                    );
                }
                rejected += n;
                short += low.len();
            }
            let suspects = replicas.iter().any(|replica| {
                let snapshot = replica.snapshot();
                snapshot.iter().any(|s| !s.suspected_shared_with.is_empty())
            });
            if !together && suspects {
                println!("{sweep}: limit {limit} phase {phase}: the pair is suspected");
                suspected += 1;
            }
            runs += 1;
        }
    }
    let suspected = if together {
        String::new()
    } else {
        format!("; suspected at the end of {suspected}")
    };
    println!("{sweep}: {rejected} 429s and {short} windows below 95 % in {runs} runs{suspected}");
}

#[tokio::test(start_paused = true)]
#[ignore = "a sweep: prints figures, takes a while"]
async fn sweep_two_groups_in_one_undeclared_bucket() {
    pair_sweep("one bucket", true, &[16, 24, 37, 40, 42, 59, 69, 100]).await;
}

#[tokio::test(start_paused = true)]
#[ignore = "a sweep: prints figures, takes a while"]
async fn sweep_two_groups_counted_apart() {
    pair_sweep("apart", false, &[16, 24, 37, 39, 40, 42, 59, 69, 100]).await;
}

/// Two groups in one undeclared bucket, each group's calls on replicas the other's never
/// use: no replica sees both, so none suspects the pair, and after their first windows each
/// group takes the other for a client outside the gateway.
#[tokio::test(start_paused = true)]
#[ignore = "a sweep: prints figures, takes a while"]
async fn sweep_two_groups_in_one_undeclared_bucket_on_separate_replicas() {
    let (mut rejected, mut short, mut runs) = (0, 0, 0);
    for limit in [16u64, 24, 37, 40, 42, 59, 69, 100] {
        for phase in (0..1000).step_by(45) {
            let bucket = split(limit, phase, limit as usize * 10).await;
            let (n, low) = misses(&bucket, limit);
            if n > 0 || !low.is_empty() {
                println!(
                    "separate replicas: limit {limit} phase {phase}: 429s {n}, below 95 % {low:?}"
                );
            }
            rejected += n;
            short += low.len();
            runs += 1;
        }
    }
    println!("separate replicas: {rejected} 429s and {short} windows below 95 % in {runs} runs");
}

/// The benchmark's mix beside another client sending `share` of the limit for three windows
/// from `from` windows in.
async fn other_client_sweep(name: &str, limits: &[u64], starts: &[f64], share: f64) {
    let (mut failed, mut runs) = (0, 0);
    for &limit in limits {
        for &from in starts {
            if let Some(miss) = misses_beside_a_client(limit, from, share).await {
                println!("{name}: limit {limit} from {from}: {miss}");
                failed += 1;
            }
            runs += 1;
        }
    }
    println!("{name}: {failed} of {runs} runs miss a target");
}

#[tokio::test(start_paused = true)]
#[ignore = "a sweep: prints figures, takes a while"]
async fn sweep_another_client() {
    let limits = [20, 27, 33, 40, 47, 55, 62, 69, 80, 95];
    let starts = [3.1, 3.3, 3.5, 3.7, 3.9];
    other_client_sweep("30 %", &limits, &starts, 0.3).await;
    let limits = [23, 30, 37, 44, 51, 58, 66, 73, 87, 100];
    let starts = [3.2, 3.4, 3.6, 3.8, 4.0];
    for share in [0.2f64, 0.3, 0.4] {
        let name = format!("{} % (second grid)", (share * 100.0).round());
        other_client_sweep(&name, &limits, &starts, share).await;
    }
    let limits: Vec<u64> = (16..=100).step_by(3).collect();
    other_client_sweep("the benchmark's (30 %, from 3.3)", &limits, &[3.3], 0.3).await;
}

/// Close halves the limit at window `at`: 429s only in that window, and every later full
/// window at least 95 % of the new limit (windows 1 to the last but one are judged).
#[tokio::test(start_paused = true)]
#[ignore = "a sweep: prints figures, takes a while"]
async fn sweep_a_lowered_limit() {
    let (mut failed, mut runs) = (0, 0);
    for limit in [20u64, 27, 33, 40, 47, 55, 62, 69, 80, 95] {
        for at in [2u64, 4, 6] {
            let lowered = limit / 2;
            let outcome = benchmark_mix(limit, None, Some((at, lowered))).await;
            let close = &outcome.close;
            let last = close.keys().max().copied().unwrap_or_default();
            let least = (lowered * 95).div_ceil(100);
            let rejected: Vec<_> = close
                .range(1..last)
                .filter(|(index, count)| **index != at && count.1 > 0)
                .collect();
            let short: Vec<_> = close
                .range(at + 1..last)
                .filter(|(_, count)| count.0 < least)
                .collect();
            if !rejected.is_empty() || !short.is_empty() {
                println!("halved: limit {limit} at {at}: 429s {rejected:?}, below 95 % {short:?}");
                failed += 1;
            }
            runs += 1;
        }
    }
    println!("halved: {failed} of {runs} runs miss a target");
}

/// The middle of a rolling update: two replicas of one version, one of the next, each
/// version in its own state; with one registry of windows for both, with one each (as when
/// the other version's fields cannot be read), and no rollout (one state).
#[tokio::test(start_paused = true)]
#[ignore = "a sweep: prints figures, takes a while"]
async fn sweep_a_rolling_update() {
    for how in [
        Rollout::RegistriesApart,
        Rollout::OneRegistry,
        Rollout::None,
    ] {
        let sweep = match how {
            Rollout::OneRegistry => "rollout",
            Rollout::RegistriesApart => "rollout, registries apart",
            Rollout::None => "no rollout",
        };
        let (mut rejected, mut hit, mut short, mut runs) = (0, 0, 0, 0);
        let (mut accepted, mut allowed) = (0, 0);
        for limit in [16u64, 24, 37, 40, 42, 59, 69, 100] {
            for phase in (0..1000).step_by(90) {
                let bucket = rollout(limit, phase, how).await;
                let (n, low) = misses(&bucket, limit);
                let last = bucket.windows.keys().max().copied().unwrap_or_default();
                for w in bucket.windows.range(2..last).map(|(_, w)| w) {
                    accepted += w.0;
                    allowed += limit;
                }
                if n > 0 || !low.is_empty() {
                    println!("{sweep}: limit {limit} phase {phase}: 429s {n}, below 95 % {low:?}");
                }
                rejected += n;
                hit += u64::from(n > 0);
                short += low.len();
                runs += 1;
            }
        }
        println!(
            "{sweep}: {rejected} 429s in {hit} runs and {short} windows below 95 % in {runs} runs; \
             {:.1} % of the limit taken from the third window to the last but one",
            accepted as f64 * 100.0 / allowed.max(1) as f64
        );
    }
}
