//! What one emulator instance is: its API keys, endpoint groups, limits, header era and faults.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

/// One API key the emulator accepts, and whose it is.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    /// The key, sent as the Basic-auth username.
    pub key: String,
    /// The organization the key belongs to (`orga_...`); its data and org limits are shared.
    pub organization_id: String,
    /// The user the key acts as (`user_...`).
    pub user_id: String,
}

impl ApiKey {
    /// A key of `organization_id`, acting as a user derived from the key.
    pub fn new(key: &str, organization_id: &str) -> Self {
        let user: String = key.chars().filter(char::is_ascii_alphanumeric).collect();
        ApiKey {
            key: key.to_owned(),
            organization_id: organization_id.to_owned(),
            user_id: format!("user_{user}"),
        }
    }
}

/// A set of endpoints Close limits together. Several groups may share one bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointGroup {
    /// The group's name (`lead_read`, ...).
    pub name: String,
    /// The bucket the group's requests count against; the legacy 429 body's
    /// `rate_endpoint_group`.
    pub bucket: String,
    /// Which requests belong to the group.
    pub rules: Vec<RouteRule>,
}

impl EndpointGroup {
    /// A group of `rules` given as `(method, pattern)` pairs (see [`RouteRule`]).
    pub fn new(name: &str, bucket: &str, rules: &[(&str, &str)]) -> Self {
        EndpointGroup {
            name: name.to_owned(),
            bucket: bucket.to_owned(),
            rules: rules.iter().map(|(m, p)| RouteRule::new(m, p)).collect(),
        }
    }
}

/// One `(method, path pattern)` of a group.
///
/// The method is matched case-insensitively, `*` matches any. The pattern is matched against
/// the path below `/api/v1` (`/lead/lead_x/`), segment by segment: `*` is exactly one segment,
/// a final `**` is any rest, including nothing. So `/lead/*/` matches `/lead/lead_x/` but
/// not `/lead/`, and `/activity/**` matches every activity path.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteRule {
    /// `GET`, `POST`, ... or `*`.
    pub method: String,
    /// The path pattern.
    pub pattern: String,
}

impl RouteRule {
    /// A rule.
    pub fn new(method: &str, pattern: &str) -> Self {
        RouteRule {
            method: method.to_owned(),
            pattern: pattern.to_owned(),
        }
    }

    /// True when the rule covers this request (`path` relative to `/api/v1`).
    pub fn matches(&self, method: &str, path: &str) -> bool {
        if self.method != "*" && !self.method.eq_ignore_ascii_case(method) {
            return false;
        }
        let mut want = self.pattern.split('/');
        let mut have = path.split('/');
        loop {
            match (want.next(), have.next()) {
                (Some("**"), _) => return true,
                (None, None) => return true,
                (Some("*"), Some(seg)) if !seg.is_empty() => {}
                (Some(w), Some(h)) if w == h => {}
                _ => return false,
            }
        }
    }
}

/// An unannounced, tighter limit on a bucket: Close answers 429 while `remaining` > 0.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HiddenLimit {
    /// Requests per key and window actually allowed, below the announced limit.
    pub limit: Option<u64>,
    /// Probability in `0.0..=1.0` that an otherwise allowed request is refused.
    pub probability: f64,
}

/// The limits of every bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// The fixed window's length.
    pub window: Duration,
    /// Per-key limit of a bucket not listed in `bucket_limits`.
    pub default_limit: u64,
    /// Per-key limit, by bucket.
    pub bucket_limits: BTreeMap<String, u64>,
    /// Organization limit = this × the key limit, unless `org_limits` names the bucket.
    pub org_multiplier: u64,
    /// Explicit organization limits, by bucket.
    pub org_limits: BTreeMap<String, u64>,
    /// Hidden tighter limits, by bucket.
    pub hidden: BTreeMap<String, HiddenLimit>,
}

impl Limits {
    /// `limit` per key in every bucket, 1 s windows, org = 3 × key.
    pub fn uniform(limit: u64) -> Self {
        Limits {
            window: Duration::from_secs(1),
            default_limit: limit,
            bucket_limits: BTreeMap::new(),
            org_multiplier: 3,
            org_limits: BTreeMap::new(),
            hidden: BTreeMap::new(),
        }
    }

    /// The per-key limit of `bucket`.
    pub fn key_limit(&self, bucket: &str) -> u64 {
        self.bucket_limits
            .get(bucket)
            .copied()
            .unwrap_or(self.default_limit)
    }

    /// The organization limit of `bucket`.
    pub fn org_limit(&self, bucket: &str) -> u64 {
        match self.org_limits.get(bucket) {
            Some(limit) => *limit,
            None => self.key_limit(bucket).saturating_mul(self.org_multiplier),
        }
    }
}

/// Which rate-limit headers the emulator sends, after the era of Close it imitates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HeaderEra {
    /// 2017-2020: `X-Rate-Limit-Limit`, `-Remaining`, `-Reset` (decimal seconds).
    Legacy2017,
    /// 2022: the 2017 headers, `ratelimit-limit/-remaining/-reset` and
    /// `x-ratelimit-limit: 60, 60;w=1, 180;w=1`.
    Era2022,
    /// Since 2023-07: `RateLimit: limit=100, remaining=50, reset=5`.
    #[default]
    Current,
    /// As logged by one 2025 integration: `ratelimit: limit=160; remaining=159; reset=8`.
    CurrentLowerSemicolon,
}

impl FromStr for HeaderEra {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "legacy2017" | "legacy" | "2017" => Ok(HeaderEra::Legacy2017),
            "era2022" | "2022" => Ok(HeaderEra::Era2022),
            "current" => Ok(HeaderEra::Current),
            "current-lower-semicolon" | "lower-semicolon" => Ok(HeaderEra::CurrentLowerSemicolon),
            other => Err(format!(
                "unknown header era {other:?}: legacy2017, era2022, current, current-lower-semicolon"
            )),
        }
    }
}

/// The JSON body of a 429.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LegacyBody {
    /// No body at all, as Close's ingress sends since 2024-04.
    #[default]
    None,
    /// `{"error": {"message": ..., "rate_reset": 0.87, ...}}`.
    Nested,
    /// The same keys at top level, `rate_reset` as a string.
    Flat,
}

impl FromStr for LegacyBody {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" | "off" => Ok(LegacyBody::None),
            "nested" => Ok(LegacyBody::Nested),
            "flat" => Ok(LegacyBody::Flat),
            other => Err(format!("unknown 429 body {other:?}: none, nested, flat")),
        }
    }
}

/// Injected failures, applied to requests that passed the rate limiter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Added to every such request before it is processed.
    pub latency: Duration,
    /// Probability of a 502, 503 or 504 (one third each).
    pub error_rate: f64,
    /// Probability that the connection is dropped without an answer.
    pub reset_rate: f64,
}

/// Everything an emulator instance is configured with.
#[derive(Debug, Clone, PartialEq)]
pub struct EmulatorConfig {
    /// The accepted keys; requests with any other key get 401.
    pub api_keys: Vec<ApiKey>,
    /// Load the sample data of [`crate::emulator::seed`] at start.
    pub seeded: bool,
    /// Endpoint groups, first match wins; a request no rule covers counts against bucket
    /// `other`.
    pub groups: Vec<EndpointGroup>,
    /// Limits per bucket.
    pub limits: Limits,
    /// Rate-limit header form.
    pub era: HeaderEra,
    /// 429 body form.
    pub legacy_body: LegacyBody,
    /// Injected failures (changeable at run time).
    pub faults: Faults,
    /// How long a search cursor stays valid after it was issued.
    pub cursor_ttl: Duration,
    /// Results one search query can page through in all (Close: 10,000).
    pub search_result_cap: usize,
}

impl Default for EmulatorConfig {
    /// For functional tests: key `test-key` of `orga_test`, no data, limits (1000 per key and
    /// second) no test reaches, current headers, no 429 body, no faults.
    fn default() -> Self {
        EmulatorConfig {
            api_keys: vec![ApiKey::new("test-key", "orga_test")],
            seeded: false,
            groups: default_groups(),
            limits: Limits::uniform(1000),
            era: HeaderEra::Current,
            legacy_body: LegacyBody::None,
            faults: Faults::default(),
            cursor_ttl: Duration::from_secs(30),
            search_result_cap: 10_000,
        }
    }
}

impl EmulatorConfig {
    /// For `close-gateway --dev`: sample data and Close-like limits (40 per key and second,
    /// 16 for search).
    pub fn dev() -> Self {
        let mut limits = Limits::uniform(40);
        limits.bucket_limits.insert("search".to_owned(), 16);
        EmulatorConfig {
            seeded: true,
            limits,
            ..EmulatorConfig::default()
        }
    }
}

/// The default groups. Close does not publish its own; integrators report that lead, task
/// and activity writes share one bucket, so they do here (`write`).
pub fn default_groups() -> Vec<EndpointGroup> {
    vec![
        EndpointGroup::new("lead_read", "lead_read", &[("GET", "/lead/**")]),
        EndpointGroup::new("lead_write", "write", &[("*", "/lead/**")]),
        EndpointGroup::new("task_read", "task_read", &[("GET", "/task/**")]),
        EndpointGroup::new("task_write", "write", &[("*", "/task/**")]),
        EndpointGroup::new("activity_read", "activity_read", &[("GET", "/activity/**")]),
        EndpointGroup::new("activity_write", "write", &[("*", "/activity/**")]),
        EndpointGroup::new("search", "search", &[("*", "/data/search/")]),
        EndpointGroup::new("other", "other", &[("*", "/**")]),
    ]
}
