//! Parses what Close says about its rate limits, in every form it has used.
//!
//! Close has announced limits in three header eras (see the project README), a `Retry-After`
//! header on 429s, and a legacy 429 JSON body, nested or flat. All of them end up in one
//! [`RateLimitInfo`], which the limiter consumes. Malformed parts are ignored, never fatal:
//! a bad header must not turn a good response into an error.
//!
//! Precedence: newest wins, field by field. Each era is read on its own; a field that a newer
//! era states replaces the older era's value, and a field the newer era omits (or garbles)
//! keeps the older value. The order is 2017-2020 `x-rate-limit-*`, then the 2022 headers
//! (`x-ratelimit-limit` policy list, then `ratelimit-*`), then the 2023 `RateLimit` header,
//! then the legacy body, which only fills fields that no header stated.

use std::time::Duration;

use http::HeaderMap;
use serde_json::Value;

/// Longest reset or wait believed. Close's windows are seconds long; anything past an hour is
/// garbage, and obeying it would stall a group for that long.
const MAX_SECONDS: u64 = 3_600;

/// Largest limit or remaining count believed. Close's limits are in the hundreds; keeping
/// counts far below `i64::MAX` keeps the limiter's arithmetic and Redis integers safe.
const MAX_COUNT: u64 = 1_000_000_000;

/// What one Close response said about its rate limit. Every field is optional because every
/// era and every response carries a different subset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RateLimitInfo {
    /// Requests allowed per window.
    pub limit: Option<u64>,
    /// Requests left in the current window.
    pub remaining: Option<u64>,
    /// Time until the current window resets.
    pub reset: Option<Duration>,
    /// The window's length, when announced (`w=` of `x-ratelimit-limit`, `rate_window`).
    pub window: Option<Duration>,
    /// `Retry-After`, on 429s.
    pub retry_after: Option<Duration>,
    /// `rate_limit_type` of the legacy body: "key" or "org".
    pub limit_type: Option<String>,
    /// `rate_endpoint_group` of the legacy body.
    pub endpoint_group: Option<String>,
    /// The headers of the newest era present, as received (`name: value`, joined by ", "),
    /// for display.
    pub raw_header: Option<String>,
}

/// How one header's value is read.
#[derive(Clone, Copy)]
enum Form {
    Limit,
    Remaining,
    Reset,
    /// `x-ratelimit-limit: 60, 60;w=1, 100;w=1`.
    Policy,
    /// `RateLimit: limit=100, remaining=50, reset=5`.
    Structured,
}

/// Header eras, oldest first. Within an era, later headers win too: the single-valued
/// `ratelimit-*` headers say exactly what they mean, the policy list does not.
const ERAS: [&[(&str, Form)]; 3] = [
    &[
        ("x-rate-limit-limit", Form::Limit),
        ("x-rate-limit-remaining", Form::Remaining),
        ("x-rate-limit-reset", Form::Reset),
    ],
    &[
        ("x-ratelimit-limit", Form::Policy),
        ("ratelimit-limit", Form::Limit),
        ("ratelimit-remaining", Form::Remaining),
        ("ratelimit-reset", Form::Reset),
    ],
    &[("ratelimit", Form::Structured)],
];

impl RateLimitInfo {
    /// True when nothing usable for limiting was learned (the legacy body's labels and the
    /// raw header do not count).
    pub fn is_empty(&self) -> bool {
        self.limit.is_none()
            && self.remaining.is_none()
            && self.reset.is_none()
            && self.window.is_none()
            && self.retry_after.is_none()
    }

    /// How long to wait before calling this group again after a 429: `reset`, then
    /// `Retry-After` (Close's advice: prefer the reset); `None` when Close said neither.
    pub fn wait_hint(&self) -> Option<Duration> {
        self.reset.or(self.retry_after)
    }

    /// Reads every rate-limit header form; see the module docs for precedence. Header names
    /// are case-insensitive by construction of `HeaderMap`. Values that are not visible
    /// ASCII are ignored.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut info = RateLimitInfo::default();
        for era in ERAS {
            let mut newer = RateLimitInfo::default();
            let mut raw = Vec::new();
            for &(name, form) in era {
                let Some(value) = header_str(headers, name) else {
                    continue;
                };
                newer.apply(form, value);
                raw.push(format!("{name}: {value}"));
            }
            if !raw.is_empty() {
                newer.raw_header = Some(raw.join(", "));
            }
            info.overlay(newer);
        }
        info.retry_after = header_str(headers, "retry-after").and_then(parse_seconds);
        info
    }

    /// Adds what a legacy 429 body says (`{"error": {...}}` or the same keys at top level).
    /// Header values win: the body is the oldest form, deprecated in 2024-04. Its `rate_reset`
    /// also yields to `Retry-After`, so that a pause follows the header `reset`, then
    /// `Retry-After`, then the body.
    pub fn merge_legacy_body(&mut self, body: &Value) {
        let object = match body.get("error") {
            Some(inner @ Value::Object(_)) => inner,
            _ => body,
        };
        let Some(object) = object.as_object() else {
            return;
        };
        if self.reset.is_none() && self.retry_after.is_none() {
            self.reset = object.get("rate_reset").and_then(json_seconds);
        }
        if self.limit.is_none() {
            self.limit = object.get("rate_limit").and_then(json_count);
        }
        if self.window.is_none() {
            self.window = object.get("rate_window").and_then(json_seconds);
        }
        if let Some(kind) = object.get("rate_limit_type").and_then(Value::as_str) {
            self.limit_type = Some(kind.to_owned());
        }
        if let Some(group) = object.get("rate_endpoint_group").and_then(Value::as_str) {
            self.endpoint_group = Some(group.to_owned());
        }
    }

    /// Takes every field `newer` states.
    fn overlay(&mut self, newer: RateLimitInfo) {
        let RateLimitInfo {
            limit,
            remaining,
            reset,
            window,
            retry_after,
            limit_type,
            endpoint_group,
            raw_header,
        } = newer;
        self.limit = limit.or(self.limit);
        self.remaining = remaining.or(self.remaining);
        self.reset = reset.or(self.reset);
        self.window = window.or(self.window);
        self.retry_after = retry_after.or(self.retry_after);
        self.limit_type = limit_type.or(self.limit_type.take());
        self.endpoint_group = endpoint_group.or(self.endpoint_group.take());
        self.raw_header = raw_header.or(self.raw_header.take());
    }

    /// Applies one header value; a malformed value leaves the field as it was.
    fn apply(&mut self, form: Form, value: &str) {
        match form {
            Form::Limit => self.limit = parse_count(value).or(self.limit),
            Form::Remaining => self.remaining = parse_count(value).or(self.remaining),
            Form::Reset => self.reset = parse_seconds(value).or(self.reset),
            Form::Policy => self.apply_policy(value),
            Form::Structured => self.apply_structured(value),
        }
    }

    /// `RateLimit: limit=100, remaining=50, reset=5` (also `;`-separated, any order, any case).
    /// Parts without `=`, unknown keys and malformed values are skipped.
    fn apply_structured(&mut self, value: &str) {
        for part in value.split([',', ';']) {
            let Some((key, val)) = part.split_once('=') else {
                continue;
            };
            let form = match key.trim().to_ascii_lowercase().as_str() {
                "limit" => Form::Limit,
                "remaining" => Form::Remaining,
                "reset" => Form::Reset,
                _ => continue,
            };
            self.apply(form, val);
        }
    }

    /// `x-ratelimit-limit: 60, 60;w=1, 100;w=1`: the leading number of the first item is the
    /// limit; the first `w=` of any item is the window.
    fn apply_policy(&mut self, value: &str) {
        for (i, item) in value.split(',').enumerate() {
            let mut parts = item.split(';');
            let quota = parts.next().and_then(parse_count);
            if i == 0 {
                self.limit = quota.or(self.limit);
            }
            if self.window.is_none() {
                self.window = window_of(parts);
            }
        }
    }
}

/// The first value of `name` that is visible ASCII, trimmed.
fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(name)
        .iter()
        .find_map(|value| value.to_str().ok())
        .map(str::trim)
}

fn window_of<'a>(params: impl Iterator<Item = &'a str>) -> Option<Duration> {
    for param in params {
        let Some((key, val)) = param.split_once('=') else {
            continue;
        };
        if key.trim().eq_ignore_ascii_case("w") {
            return parse_seconds(val);
        }
    }
    None
}

/// Strips surrounding whitespace and one pair of optional quotes.
fn unquote(value: &str) -> &str {
    let value = value.trim();
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
        .trim()
}

/// Splits plain decimal `123.45` into its digit runs; `None` unless only ASCII digits with at
/// most one `.` and at least one digit. Rejects signs, exponents, `inf` and `NaN` outright.
fn decimal_parts(value: &str) -> Option<(&str, &str)> {
    let (whole, frac) = value.split_once('.').unwrap_or((value, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) {
        return None;
    }
    Some((whole, frac))
}

/// A count such as a limit: a non-negative integer up to [`MAX_COUNT`]. A zero fraction
/// (`40.0`) is tolerated because some proxies render integers that way.
fn parse_count(value: &str) -> Option<u64> {
    let (whole, frac) = decimal_parts(unquote(value))?;
    if whole.is_empty() || frac.bytes().any(|b| b != b'0') {
        return None;
    }
    let count: u64 = whole.parse().ok()?;
    (count <= MAX_COUNT).then_some(count)
}

/// Decimal seconds, e.g. "4.96", parsed exactly (digits past nanoseconds are dropped).
/// Signs, exponents, `inf`, `NaN` and values over an hour are rejected.
pub fn parse_seconds(value: &str) -> Option<Duration> {
    let (whole, frac) = decimal_parts(unquote(value))?;
    let secs: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut nanos = 0u32;
    for i in 0..9 {
        let digit = frac.as_bytes().get(i).map_or(0, |b| u32::from(b - b'0'));
        nanos = nanos * 10 + digit;
    }
    let duration = Duration::new(secs.min(MAX_SECONDS + 1), nanos);
    (duration <= Duration::from_secs(MAX_SECONDS)).then_some(duration)
}

fn json_seconds(value: &Value) -> Option<Duration> {
    match value {
        Value::Number(n) => {
            let secs = n.as_f64()?;
            if !secs.is_finite() || secs.is_sign_negative() || secs > MAX_SECONDS as f64 {
                return None;
            }
            Duration::try_from_secs_f64(secs).ok()
        }
        Value::String(s) => parse_seconds(s),
        _ => None,
    }
}

fn json_count(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => {
            if let Some(count) = n.as_u64() {
                return (count <= MAX_COUNT).then_some(count);
            }
            let float = n.as_f64()?;
            let whole = float >= 0.0 && float.fract() == 0.0 && float <= MAX_COUNT as f64;
            whole.then_some(float as u64)
        }
        Value::String(s) => parse_count(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
