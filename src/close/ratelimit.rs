//! Parses what Close says about its rate limits, in every form it has used.
//!
//! Close has announced limits in three header eras (see the project README), a `Retry-After`
//! header on 429s, and a legacy 429 JSON body, nested or flat. All of them end up in one
//! [`RateLimitInfo`], which the limiter consumes. Malformed parts are ignored, never fatal:
//! a bad header must not turn a good response into an error.

use std::time::Duration;

use http::HeaderMap;
use serde_json::Value;

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
    /// The rate-limit header as received, for display.
    pub raw_header: Option<String>,
}

impl RateLimitInfo {
    /// True when nothing was learned.
    pub fn is_empty(&self) -> bool {
        self.limit.is_none()
            && self.remaining.is_none()
            && self.reset.is_none()
            && self.retry_after.is_none()
    }

    /// How long to wait before calling this group again after a 429: `reset`, then
    /// `Retry-After`; `None` when Close said neither.
    pub fn wait_hint(&self) -> Option<Duration> {
        self.reset.or(self.retry_after)
    }

    /// Reads every rate-limit header form. The newest era wins where several are present.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut info = RateLimitInfo::default();
        // Oldest first, so that newer forms overwrite.
        for (name, field) in [
            ("x-rate-limit-limit", Field::Limit),
            ("x-rate-limit-remaining", Field::Remaining),
            ("x-rate-limit-reset", Field::Reset),
            ("ratelimit-limit", Field::Limit),
            ("ratelimit-remaining", Field::Remaining),
            ("ratelimit-reset", Field::Reset),
        ] {
            if let Some(value) = header_str(headers, name) {
                info.set(field, value);
                info.raw_header
                    .get_or_insert_with(|| format!("{name}: {value}"));
            }
        }
        if let Some(value) = header_str(headers, "x-ratelimit-limit") {
            info.apply_policy(value);
        }
        if let Some(value) = header_str(headers, "ratelimit") {
            info.apply_structured(value);
            info.raw_header = Some(format!("ratelimit: {value}"));
        }
        if let Some(value) = header_str(headers, "retry-after") {
            info.retry_after = parse_seconds(value);
        }
        info
    }

    /// Adds what a legacy 429 body says (`{"error": {...}}` or the same keys at top level).
    /// Header values win: the body is deprecated.
    pub fn merge_legacy_body(&mut self, body: &Value) {
        let object = match body.get("error") {
            Some(inner @ Value::Object(_)) => inner,
            _ => body,
        };
        let Some(object) = object.as_object() else {
            return;
        };
        if self.reset.is_none() {
            self.reset = object.get("rate_reset").and_then(json_seconds);
        }
        if self.limit.is_none() {
            self.limit = object.get("rate_limit").and_then(json_u64);
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

    /// `RateLimit: limit=100, remaining=50, reset=5` (also `;`-separated, any order, any case).
    fn apply_structured(&mut self, value: &str) {
        for part in value.split([',', ';']) {
            let Some((key, val)) = part.split_once('=') else {
                continue;
            };
            let field = match key.trim().to_ascii_lowercase().as_str() {
                "limit" => Field::Limit,
                "remaining" => Field::Remaining,
                "reset" => Field::Reset,
                _ => continue,
            };
            self.set(field, val);
        }
    }

    /// `x-ratelimit-limit: 60, 60;w=1, 100;w=1`: the first bare number is the limit; the first
    /// policy's `w=` is the window.
    fn apply_policy(&mut self, value: &str) {
        let mut items = value.split(',').map(str::trim);
        if let Some(first) = items.next() {
            let mut parts = first.split(';');
            if let Some(limit) = parts.next().and_then(parse_u64) {
                self.limit.get_or_insert(limit);
            }
            self.window = self.window.or_else(|| window_of(parts));
        }
        for item in items {
            let mut parts = item.split(';');
            let _quota = parts.next();
            if self.window.is_none() {
                self.window = window_of(parts);
            }
        }
    }

    fn set(&mut self, field: Field, value: &str) {
        match field {
            Field::Limit => {
                if let Some(v) = parse_u64(value) {
                    self.limit = Some(v);
                }
            }
            Field::Remaining => {
                if let Some(v) = parse_u64(value) {
                    self.remaining = Some(v);
                }
            }
            Field::Reset => {
                if let Some(v) = parse_seconds(value) {
                    self.reset = Some(v);
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Field {
    Limit,
    Remaining,
    Reset,
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok().map(str::trim)
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

fn parse_u64(value: &str) -> Option<u64> {
    let value = value.trim().trim_matches('"');
    if let Ok(v) = value.parse::<u64>() {
        return Some(v);
    }
    // Some proxies render integers as "40.0".
    let float: f64 = value.parse().ok()?;
    (float.is_finite() && float >= 0.0 && float.fract() == 0.0 && float < 1e15)
        .then(|| float as u64)
}

/// Decimal seconds, e.g. "4.96". Negative, infinite and absurd (over a day) values are
/// rejected: a wrong reset must not pause a group for hours.
pub fn parse_seconds(value: &str) -> Option<Duration> {
    let value = value.trim().trim_matches('"');
    let secs: f64 = value.parse().ok()?;
    seconds(secs)
}

fn seconds(secs: f64) -> Option<Duration> {
    if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
        return None;
    }
    Some(Duration::from_secs_f64(secs))
}

fn json_seconds(value: &Value) -> Option<Duration> {
    match value {
        Value::Number(n) => seconds(n.as_f64()?),
        Value::String(s) => parse_seconds(s),
        _ => None,
    }
}

fn json_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => parse_u64(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
