//! Close's timestamps (`2018-09-17T17:40:44.085000+00:00`) without a date-time crate.
//!
//! Stored timestamps come from the wall clock; rate-limit windows and cursors use
//! `tokio::time::Instant` instead, so that paused-clock tests control them.

use std::time::{SystemTime, UNIX_EPOCH};

const MICROS_PER_DAY: i64 = 86_400 * 1_000_000;

/// Microseconds since the Unix epoch, now.
pub(crate) fn now_micros() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// Now, as Close writes it.
pub(crate) fn now_iso() -> String {
    format_micros(now_micros())
}

/// The last microsecond of today (UTC): a task dated up to this is due today.
pub(crate) fn end_of_today_micros() -> i64 {
    let now = now_micros();
    now - now.rem_euclid(MICROS_PER_DAY) + MICROS_PER_DAY - 1
}

/// `2018-09-17T17:40:44.085000+00:00`.
pub(crate) fn format_micros(micros: i64) -> String {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let rest = micros.rem_euclid(MICROS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let secs = rest / 1_000_000;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}+00:00",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        rest % 1_000_000
    )
}

/// Parses `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DDTHH:MM[:SS[.ffffff]]` with `Z`, `±HH:MM`
/// or no offset (UTC). `None` when it is neither.
pub(crate) fn parse_micros(text: &str) -> Option<i64> {
    let text = text.trim();
    let date = text.get(..10)?;
    let mut parts = date.split('-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut micros = days_from_civil(y, m, d) * MICROS_PER_DAY;
    let rest = &text[10..];
    if rest.is_empty() {
        return Some(micros);
    }
    let rest = rest.strip_prefix(['T', ' '])?;
    let split = rest.find(['Z', 'z', '+', '-']).unwrap_or(rest.len());
    let (clock, zone) = rest.split_at(split);
    micros += parse_clock(clock)?;
    micros -= parse_offset(zone)?;
    Some(micros)
}

/// `HH:MM[:SS[.fff]]` → microseconds.
fn parse_clock(clock: &str) -> Option<i64> {
    let mut parts = clock.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let (s, frac) = match parts.next() {
        Some(sec) => match sec.split_once('.') {
            Some((s, f)) => (s.parse().ok()?, f),
            None => (sec.parse().ok()?, ""),
        },
        None => (0i64, ""),
    };
    if parts.next().is_some() || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let mut fraction = 0i64;
    let mut scale = 100_000i64;
    for c in frac.chars() {
        fraction += i64::from(c.to_digit(10)?) * scale;
        scale /= 10;
    }
    Some(((h * 60 + m) * 60 + s) * 1_000_000 + fraction)
}

/// `Z`, `+HH:MM`, `-HHMM` or nothing → microseconds east of UTC.
fn parse_offset(zone: &str) -> Option<i64> {
    if zone.is_empty() || zone.eq_ignore_ascii_case("z") {
        return Some(0);
    }
    let (sign, digits) = match zone.split_at(1) {
        ("+", d) => (1, d),
        ("-", d) => (-1, d),
        _ => return None,
    };
    let digits = digits.replace(':', "");
    if digits.len() != 4 {
        return None;
    }
    let h: i64 = digits.get(..2)?.parse().ok()?;
    let m: i64 = digits.get(2..)?.parse().ok()?;
    Some(sign * (h * 60 + m) * 60 * 1_000_000)
}

/// Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Howard Hinnant's `days_from_civil`.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_close() {
        let micros = parse_micros("2018-09-17T17:40:44.085+00:00").unwrap();
        assert_eq!(format_micros(micros), "2018-09-17T17:40:44.085000+00:00");
    }

    #[test]
    fn parses_dates_and_offsets() {
        let midnight = parse_micros("2024-02-29").unwrap();
        assert_eq!(format_micros(midnight), "2024-02-29T00:00:00.000000+00:00");
        let shifted = parse_micros("2024-02-29T02:30:00+02:30").unwrap();
        assert_eq!(shifted, midnight);
        assert_eq!(parse_micros("2024-02-29T00:00:00Z"), Some(midnight));
        assert_eq!(parse_micros("tomorrow"), None);
        assert_eq!(parse_micros("2024-13-01"), None);
    }
}
