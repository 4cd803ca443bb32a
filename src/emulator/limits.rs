//! Close's rate limiting: fixed windows per (bucket, key) and (bucket, organization), the
//! headers of each era, the 429 answer, and per-second statistics.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Response, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::config::{EndpointGroup, HeaderEra, LegacyBody, Limits};

/// Requests accepted and refused, per bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// By bucket name.
    pub buckets: BTreeMap<String, BucketStats>,
}

/// One bucket's counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BucketStats {
    /// Requests that passed the limiter (including ones a fault then failed).
    pub accepted: u64,
    /// Requests answered 429.
    pub throttled: u64,
    /// Of `throttled`, those refused by a hidden limit while `remaining` was above 0.
    pub throttled_hidden: u64,
    /// By whole second since the emulator started.
    pub per_second: BTreeMap<u64, SecondStats>,
}

/// One second's counts of a bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecondStats {
    pub accepted: u64,
    pub throttled: u64,
}

/// What the rate-limit headers of a response announce.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Announce {
    /// The limit the request is closest to hitting (key or organization).
    pub limit: u64,
    pub remaining: u64,
    /// Until the window ends.
    pub reset: Duration,
    pub key_limit: u64,
    pub org_limit: u64,
    pub window: Duration,
}

/// The limiter's answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    Allow(Announce),
    Deny {
        announce: Announce,
        /// `key` or `org`.
        limit_type: &'static str,
        bucket: String,
    },
}

#[derive(Debug, Clone, Copy, Default)]
struct Window {
    index: u64,
    count: u64,
}

pub(crate) struct Limiter {
    start: Instant,
    limits: Limits,
    groups: Vec<EndpointGroup>,
    windows: HashMap<(String, String), Window>,
    stats: Stats,
}

impl Limiter {
    pub fn new(limits: Limits, groups: Vec<EndpointGroup>) -> Self {
        Limiter {
            start: Instant::now(),
            limits,
            groups,
            windows: HashMap::new(),
            stats: Stats::default(),
        }
    }

    /// The bucket of a request (path relative to `/api/v1`).
    pub fn bucket_of(&self, method: &str, path: &str) -> String {
        self.groups
            .iter()
            .find(|g| g.rules.iter().any(|r| r.matches(method, path)))
            .map_or_else(|| "other".to_owned(), |g| g.bucket.clone())
    }

    /// Changes a bucket's per-key limit, the bucket named directly or through one of its
    /// groups. Returns the bucket, or `None` when the name is unknown.
    pub fn set_limit(&mut self, name: &str, limit: u64) -> Option<String> {
        let bucket = match self.groups.iter().find(|g| g.name == name) {
            Some(g) => g.bucket.clone(),
            None if self.groups.iter().any(|g| g.bucket == name) => name.to_owned(),
            None => return None,
        };
        self.limits.bucket_limits.insert(bucket.clone(), limit);
        Some(bucket)
    }

    pub fn stats(&self) -> Stats {
        self.stats.clone()
    }

    /// Counts one request of `key` (of organization `org`) against its bucket.
    pub fn check(&mut self, bucket: &str, key: &str, org: &str, now: Instant) -> Verdict {
        let window = self.limits.window.max(Duration::from_millis(1));
        let elapsed = now.saturating_duration_since(self.start);
        let (nanos, window_nanos) = (elapsed.as_nanos(), window.as_nanos());
        let index = u64::try_from(nanos / window_nanos).unwrap_or(u64::MAX);
        let reset_nanos = window_nanos - nanos % window_nanos;
        let reset = Duration::from_nanos(u64::try_from(reset_nanos).unwrap_or(u64::MAX));
        let key_limit = self.limits.key_limit(bucket);
        let org_limit = self.limits.org_limit(bucket);
        let key_used = self.used(bucket, &format!("key:{key}"), index);
        let org_used = self.used(bucket, &format!("org:{org}"), index);
        let announce = |limit: u64, used: u64| Announce {
            limit,
            remaining: limit.saturating_sub(used),
            reset,
            key_limit,
            org_limit,
            window,
        };
        let second = elapsed.as_secs();
        let denied = if key_used >= key_limit {
            Some((announce(key_limit, key_used), "key", false))
        } else if org_used >= org_limit {
            Some((announce(org_limit, org_used), "org", false))
        } else if self.hidden_refuses(bucket, key_used) {
            Some((announce(key_limit, key_used), "key", true))
        } else {
            None
        };
        let stats = self.stats.buckets.entry(bucket.to_owned()).or_default();
        let per_second = stats.per_second.entry(second).or_default();
        if let Some((announce, limit_type, hidden)) = denied {
            stats.throttled += 1;
            stats.throttled_hidden += u64::from(hidden);
            per_second.throttled += 1;
            return Verdict::Deny {
                announce,
                limit_type,
                bucket: bucket.to_owned(),
            };
        }
        stats.accepted += 1;
        per_second.accepted += 1;
        self.bump(bucket, &format!("key:{key}"), index);
        self.bump(bucket, &format!("org:{org}"), index);
        let by_key = announce(key_limit, key_used + 1);
        let by_org = announce(org_limit, org_used + 1);
        // The header describes the limit this request is closest to hitting.
        Verdict::Allow(if by_org.remaining < by_key.remaining {
            by_org
        } else {
            by_key
        })
    }

    fn hidden_refuses(&self, bucket: &str, key_used: u64) -> bool {
        let Some(hidden) = self.limits.hidden.get(bucket) else {
            return false;
        };
        if hidden.limit.is_some_and(|limit| key_used >= limit) {
            return true;
        }
        hidden.probability > 0.0 && rand::random::<f64>() < hidden.probability
    }

    fn used(&self, bucket: &str, who: &str, index: u64) -> u64 {
        match self.windows.get(&(bucket.to_owned(), who.to_owned())) {
            Some(w) if w.index == index => w.count,
            _ => 0,
        }
    }

    fn bump(&mut self, bucket: &str, who: &str, index: u64) {
        let w = self
            .windows
            .entry((bucket.to_owned(), who.to_owned()))
            .or_default();
        if w.index != index {
            *w = Window { index, count: 0 };
        }
        w.count += 1;
    }
}

/// Seconds as Close writes them: up to three decimals, no trailing zeros (`0.87`, `1`).
pub(crate) fn decimal_seconds(d: Duration) -> String {
    let text = format!("{:.3}", d.as_secs_f64());
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_owned()
}

/// Whole seconds, rounded up, at least 1: `Retry-After`.
pub(crate) fn whole_seconds(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

/// The rate-limit headers of `era`.
pub(crate) fn headers(era: HeaderEra, a: &Announce) -> Vec<(HeaderName, String)> {
    let reset = decimal_seconds(a.reset);
    let legacy = || {
        vec![
            (name("x-rate-limit-limit"), a.limit.to_string()),
            (name("x-rate-limit-remaining"), a.remaining.to_string()),
            (name("x-rate-limit-reset"), reset.clone()),
        ]
    };
    match era {
        HeaderEra::Legacy2017 => legacy(),
        HeaderEra::Era2022 => {
            let w = decimal_seconds(a.window);
            let mut list = legacy();
            list.push((name("ratelimit-limit"), a.limit.to_string()));
            list.push((name("ratelimit-remaining"), a.remaining.to_string()));
            list.push((name("ratelimit-reset"), whole_seconds(a.reset).to_string()));
            let policy = format!("{}, {};w={w}, {};w={w}", a.limit, a.key_limit, a.org_limit);
            list.push((name("x-ratelimit-limit"), policy));
            list
        }
        HeaderEra::Current => {
            let value = format!(
                "limit={}, remaining={}, reset={reset}",
                a.limit, a.remaining
            );
            vec![(name("ratelimit"), value)]
        }
        HeaderEra::CurrentLowerSemicolon => {
            let value = format!(
                "limit={}; remaining={}; reset={reset}",
                a.limit, a.remaining
            );
            vec![(name("ratelimit"), value)]
        }
    }
}

fn name(text: &'static str) -> HeaderName {
    HeaderName::from_static(text)
}

/// Adds the era's headers to a response.
pub(crate) fn announce<B>(response: &mut Response<B>, era: HeaderEra, a: &Announce) {
    for (name, value) in headers(era, a) {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
}

/// The 429 answer: the era's headers, `Retry-After`, and the configured body.
pub(crate) fn too_many(
    era: HeaderEra,
    body: LegacyBody,
    announce_: &Announce,
    limit_type: &str,
    bucket: &str,
) -> Response<Body> {
    const MESSAGE: &str = "API call count exceeded for this period";
    let reset = decimal_seconds(announce_.reset);
    let reset_number: f64 = reset.parse().unwrap_or(0.0);
    let json = match body {
        LegacyBody::None => None,
        LegacyBody::Nested => Some(json!({"error": {
            "message": MESSAGE,
            "rate_reset": reset_number,
            "rate_limit": announce_.limit,
            "rate_window": window_number(announce_.window),
            "rate_limit_type": limit_type,
            "rate_endpoint_group": bucket,
        }})),
        LegacyBody::Flat => Some(json!({
            "error": MESSAGE,
            "rate_reset": reset,
            "rate_limit": announce_.limit,
            "rate_window": window_number(announce_.window),
            "rate_limit_type": limit_type,
            "rate_endpoint_group": bucket,
        })),
    };
    let mut response = match json {
        Some(json) => {
            let mut r = Response::new(Body::from(json.to_string()));
            let ct = HeaderValue::from_static("application/json");
            r.headers_mut().insert(header::CONTENT_TYPE, ct);
            r
        }
        None => Response::new(Body::empty()),
    };
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    announce(&mut response, era, announce_);
    let retry = HeaderValue::from(whole_seconds(announce_.reset));
    response.headers_mut().insert(header::RETRY_AFTER, retry);
    response
}

/// The window in seconds, as an integer when whole.
fn window_number(window: Duration) -> Value {
    if window.subsec_nanos() == 0 {
        json!(window.as_secs())
    } else {
        json!(window.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_written_like_close() {
        assert_eq!(decimal_seconds(Duration::from_millis(870)), "0.87");
        assert_eq!(decimal_seconds(Duration::from_secs(1)), "1");
        assert_eq!(decimal_seconds(Duration::from_micros(1_250_400)), "1.25");
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(2001)), 3);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
    }
}
