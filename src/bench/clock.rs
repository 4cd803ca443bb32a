//! The emulator's clock seen from the benchmark: which emulator second (= rate-limit window)
//! a local instant falls in, so that events timed here line up with the emulator's
//! per-second statistics.
//!
//! The emulator's windows start when it starts, and every answer's `reset` says how long
//! the current window has left (to the millisecond). One request therefore pins the window
//! boundaries to local time; which window it was is the whole number of seconds since the
//! process was spawned, rounded, because the emulator starts well within half a second.

use std::time::Duration;

use tokio::time::Instant;

/// Maps local instants to emulator time.
#[derive(Debug, Clone, Copy)]
pub struct EmuClock {
    /// The local instant of the emulator's time zero.
    zero: Instant,
}

impl EmuClock {
    /// From a probe: sent at `sent`, answered at `answered`, whose `reset` said `reset`;
    /// `spawned` is when the emulator process was spawned.
    pub fn from_probe(spawned: Instant, sent: Instant, answered: Instant, reset: Duration) -> Self {
        let mid = sent + answered.saturating_duration_since(sent) / 2;
        let boundary = mid + reset;
        let since_spawn = boundary.saturating_duration_since(spawned).as_secs_f64();
        let windows = since_spawn.round().max(1.0);
        let zero = boundary
            .checked_sub(Duration::from_secs_f64(windows))
            .unwrap_or(spawned);
        EmuClock { zero }
    }

    /// Emulator seconds at `t` (negative before the emulator started).
    pub fn at(&self, t: Instant) -> f64 {
        if t >= self.zero {
            t.duration_since(self.zero).as_secs_f64()
        } else {
            -self.zero.duration_since(t).as_secs_f64()
        }
    }
}

/// The `reset` of a `RateLimit: limit=.., remaining=.., reset=..` header (`,` or `;`).
pub fn parse_reset(header: &str) -> Option<Duration> {
    for part in header.split([',', ';']) {
        let Some((key, value)) = part.split_once('=') else {
            continue;
        };
        if key.trim().eq_ignore_ascii_case("reset") {
            let secs: f64 = value.trim().parse().ok()?;
            if secs.is_finite() && (0.0..1e9).contains(&secs) {
                // Rounded to the nanosecond: `0.87` is 870 ms, not 869.999999 ms.
                return Some(Duration::from_nanos((secs * 1e9).round() as u64));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_pins_the_windows() {
        let spawned = Instant::now();
        // The emulator started 40 ms after the spawn; the probe went out 3.25 s later and
        // took 2 ms; the window then had 0.749 s left (3.25 + 0.001 + 0.749 = 4.0).
        let zero = spawned + Duration::from_millis(40);
        let sent = zero + Duration::from_millis(3250);
        let answered = sent + Duration::from_millis(2);
        let clock = EmuClock::from_probe(spawned, sent, answered, Duration::from_millis(749));
        assert_eq!(clock.zero, zero);
        assert_eq!(clock.at(zero + Duration::from_millis(2500)), 2.5);
        assert!(clock.at(spawned) < 0.0);
    }

    #[test]
    fn reset_is_read_from_either_separator() {
        let d = parse_reset("limit=40, remaining=3, reset=0.87");
        assert_eq!(d, Some(Duration::from_millis(870)));
        let d = parse_reset("limit=160; remaining=159; RESET=8");
        assert_eq!(d, Some(Duration::from_secs(8)));
        assert_eq!(parse_reset("limit=40, remaining=3"), None);
        assert_eq!(parse_reset("reset=soon"), None);
    }
}
