//! The arithmetic of the report, kept pure so that it can be tested: percentiles, which
//! emulator windows were full backlog windows, accepted rate per window, the ideal drain
//! time, and where 429s fell relative to an event.
//!
//! Times here are emulator seconds (`f64`, seconds since the emulator started); the
//! emulator's windows are its whole seconds, so window `s` is `[s, s + 1)`.

use std::collections::BTreeMap;
use std::ops::Range;

/// Counts per emulator second.
pub type Series = BTreeMap<u64, u64>;

/// The `q`-quantile (0..=1) of `values` by the nearest-rank method; `None` when empty.
pub fn percentile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The windows entirely inside `[start, end]`.
pub fn full_windows(start: f64, end: f64) -> Range<u64> {
    if !(start.is_finite() && end.is_finite()) || end <= start {
        return 0..0;
    }
    let first = start.max(0.0).ceil() as u64;
    let last = end.max(0.0).floor() as u64;
    first..last.max(first)
}

/// Accepted ÷ limit over a set of windows.
#[derive(Debug, Clone, PartialEq)]
pub struct RateSummary {
    pub min: f64,
    pub mean: f64,
    /// Windows counted.
    pub windows: usize,
    /// Calls accepted in each full window, every client's (a window without a limit to
    /// compare with included).
    pub accepted: Vec<u64>,
}

/// Accepted ÷ limit in each of `windows` for which `limit_at` gives a limit (a window
/// where the limit changed has none and is skipped).
pub fn rate_summary(
    accepted: &Series,
    windows: Range<u64>,
    limit_at: impl Fn(u64) -> Option<f64>,
) -> Option<RateSummary> {
    let mut ratios = Vec::new();
    let mut counts = Vec::new();
    for s in windows {
        let got = accepted.get(&s).copied().unwrap_or(0);
        counts.push(got);
        let Some(limit) = limit_at(s).filter(|l| *l > 0.0) else {
            continue;
        };
        ratios.push(got as f64 / limit);
    }
    if ratios.is_empty() {
        return None;
    }
    let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
    Some(RateSummary {
        min,
        mean,
        windows: ratios.len(),
        accepted: counts,
    })
}

/// Seconds needed to send `n` calls from `start` when window `s` has room for
/// `capacity(s)` calls spread evenly over it (the fluid model behind "N ÷ limit"). `None`
/// when `n` is not reached within `horizon` windows.
pub fn ideal_drain(n: f64, start: f64, capacity: impl Fn(u64) -> f64, horizon: u64) -> Option<f64> {
    if n <= 0.0 {
        return Some(0.0);
    }
    let start = start.max(0.0);
    let mut left = n;
    let mut t = start;
    let first = start.floor() as u64;
    for s in first..first.saturating_add(horizon) {
        let rate = capacity(s).max(0.0);
        let span = (s + 1) as f64 - t;
        if rate * span >= left {
            return Some(t + left / rate - start);
        }
        left -= rate * span;
        t = (s + 1) as f64;
    }
    None
}

/// 429s counted before window `event`, in it, in the window after, and later.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AroundEvent {
    pub before: u64,
    pub at: u64,
    pub next: u64,
    pub after: u64,
}

/// Splits a per-second series around window `event`.
pub fn around_event(series: &Series, event: u64) -> AroundEvent {
    let mut out = AroundEvent::default();
    for (&s, &count) in series {
        match s {
            s if s < event => out.before += count,
            s if s == event => out.at += count,
            s if s == event + 1 => out.next += count,
            _ => out.after += count,
        }
    }
    out
}

/// `a − b` per second, never below zero.
pub fn subtract(a: &Series, b: &Series) -> Series {
    a.iter()
        .map(|(s, n)| (*s, n.saturating_sub(b.get(s).copied().unwrap_or(0))))
        .collect()
}

/// Counts events at emulator times into whole seconds.
pub fn bucket_times(times: impl IntoIterator<Item = f64>) -> Series {
    let mut out = Series::new();
    for t in times {
        *out.entry(t.max(0.0).floor() as u64).or_default() += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), Some(50.0));
        assert_eq!(percentile(&values, 0.99), Some(99.0));
        assert_eq!(percentile(&values, 1.0), Some(100.0));
        assert_eq!(percentile(&values, 0.0), Some(1.0));
        assert_eq!(percentile(&[7.0, 3.0, 5.0], 0.5), Some(5.0));
        assert_eq!(percentile(&[4.0], 0.99), Some(4.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn full_windows_are_inside_the_span() {
        assert_eq!(full_windows(2.3, 7.9), 3..7);
        assert_eq!(full_windows(2.0, 7.0), 2..7);
        assert_eq!(full_windows(2.3, 2.9), 3..3);
        assert_eq!(full_windows(5.0, 4.0), 0..0);
        assert_eq!(full_windows(f64::NAN, 4.0), 0..0);
    }

    #[test]
    fn rate_skips_windows_without_a_limit() {
        let accepted: Series = [(3, 40), (4, 38), (5, 10), (6, 20)].into();
        let limit_at = |s: u64| match s {
            0..5 => Some(40.0),
            5 => None,
            _ => Some(20.0),
        };
        let summary = rate_summary(&accepted, 3..7, limit_at).unwrap();
        assert_eq!(summary.windows, 3);
        assert_eq!(summary.min, 0.95);
        assert_eq!(summary.mean, (1.0 + 0.95 + 1.0) / 3.0);
    }

    #[test]
    fn a_window_without_calls_counts_as_zero() {
        let accepted: Series = [(3, 40)].into();
        let summary = rate_summary(&accepted, 3..5, |_| Some(40.0)).unwrap();
        assert_eq!(summary.min, 0.0);
        assert_eq!(summary.mean, 0.5);
        assert_eq!(rate_summary(&accepted, 3..3, |_| Some(40.0)), None);
    }

    #[test]
    fn ideal_drain_is_n_over_limit_at_a_constant_limit() {
        assert_eq!(ideal_drain(500.0, 2.5, |_| 50.0, 100), Some(10.0));
        assert_eq!(ideal_drain(0.0, 2.5, |_| 50.0, 100), Some(0.0));
        assert_eq!(ideal_drain(500.0, 2.5, |_| 0.0, 100), None);
    }

    #[test]
    fn ideal_drain_follows_a_lowered_limit() {
        // 40 per window until window 5, then 20: from 3.0, 80 calls by 5.0, 60 more by 8.0.
        let capacity = |s: u64| if s < 5 { 40.0 } else { 20.0 };
        assert_eq!(ideal_drain(140.0, 3.0, capacity, 100), Some(5.0));
        // From mid-window: 20 in the rest of window 3, 40 in window 4, 20 in window 5.
        assert_eq!(ideal_drain(80.0, 3.5, capacity, 100), Some(2.5));
    }

    #[test]
    fn events_split_around_a_window() {
        let series: Series = [(1, 2), (4, 3), (5, 1), (6, 4), (9, 1)].into();
        let split = around_event(&series, 4);
        assert_eq!(
            split,
            AroundEvent {
                before: 2,
                at: 3,
                next: 1,
                after: 5
            }
        );
    }

    #[test]
    fn series_arithmetic() {
        let a: Series = [(1, 5), (2, 1)].into();
        let b: Series = [(1, 2), (2, 3), (3, 1)].into();
        assert_eq!(subtract(&a, &b), [(1, 3), (2, 0)].into());
        assert_eq!(
            bucket_times([0.2, 0.9, 1.0, 3.7, -0.1]),
            [(0, 3), (1, 1), (3, 1)].into()
        );
    }
}
