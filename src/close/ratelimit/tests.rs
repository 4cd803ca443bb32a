//! Example tests for every form the Close README quotes, exact strings included. Properties
//! over generated headers and bodies live in `props`.

use http::{HeaderName, HeaderValue};
use serde_json::json;

use super::*;

mod props;

/// Every header name the parser reads.
const HEADER_NAMES: [&str; 9] = [
    "x-rate-limit-limit",
    "x-rate-limit-remaining",
    "x-rate-limit-reset",
    "x-ratelimit-limit",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "ratelimit",
    "retry-after",
];

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
        map.append(name, HeaderValue::from_str(value).unwrap());
    }
    map
}

fn ms(millis: u64) -> Option<Duration> {
    Some(Duration::from_millis(millis))
}

#[test]
fn era_2017_headers() {
    let info = RateLimitInfo::from_headers(&headers(&[
        ("X-Rate-Limit-Limit", "320"),
        ("X-Rate-Limit-Remaining", "318"),
        ("X-Rate-Limit-Reset", "4.96"),
    ]));
    assert_eq!(info.limit, Some(320));
    assert_eq!(info.remaining, Some(318));
    assert_eq!(info.reset, ms(4960));
    assert_eq!(info.window, None);
    assert_eq!(
        info.raw_header.as_deref(),
        Some("x-rate-limit-limit: 320, x-rate-limit-remaining: 318, x-rate-limit-reset: 4.96")
    );
}

#[test]
fn era_2022_headers() {
    let info = RateLimitInfo::from_headers(&headers(&[
        ("x-rate-limit-limit", "60"),
        ("x-rate-limit-remaining", "59"),
        ("x-rate-limit-reset", "1"),
        ("ratelimit-limit", "60"),
        ("ratelimit-remaining", "59"),
        ("ratelimit-reset", "1"),
        ("x-ratelimit-limit", "60, 60;w=1, 100;w=1"),
    ]));
    assert_eq!(info.limit, Some(60));
    assert_eq!(info.remaining, Some(59));
    assert_eq!(info.reset, ms(1000));
    assert_eq!(info.window, ms(1000));
    assert_eq!(
        info.raw_header.as_deref(),
        Some(
            "x-ratelimit-limit: 60, 60;w=1, 100;w=1, ratelimit-limit: 60, \
             ratelimit-remaining: 59, ratelimit-reset: 1"
        )
    );
}

#[test]
fn policy_list_alone() {
    let info =
        RateLimitInfo::from_headers(&headers(&[("x-ratelimit-limit", "60, 60;w=1, 100;w=1")]));
    assert_eq!(info.limit, Some(60));
    assert_eq!(info.window, ms(1000));
    assert_eq!(info.remaining, None);
    // The window may come from a later item, and `W` is a key like any other.
    let info = RateLimitInfo::from_headers(&headers(&[("x-ratelimit-limit", "40, 40 ; W = 8")]));
    assert_eq!((info.limit, info.window), (Some(40), ms(8000)));
}

#[test]
fn structured_header_as_documented() {
    let info = RateLimitInfo::from_headers(&headers(&[(
        "RateLimit",
        "limit=100, remaining=50, reset=5",
    )]));
    assert_eq!(info.limit, Some(100));
    assert_eq!(info.remaining, Some(50));
    assert_eq!(info.reset, ms(5000));
    assert_eq!(
        info.raw_header.as_deref(),
        Some("ratelimit: limit=100, remaining=50, reset=5")
    );
}

#[test]
fn structured_header_as_logged_in_2025() {
    let info = RateLimitInfo::from_headers(&headers(&[(
        "ratelimit",
        "limit=160; remaining=159; reset=8",
    )]));
    assert_eq!(info.limit, Some(160));
    assert_eq!(info.remaining, Some(159));
    assert_eq!(info.reset, ms(8000));
}

#[test]
fn structured_header_any_order_case_and_spacing() {
    let info = RateLimitInfo::from_headers(&headers(&[(
        "RATELIMIT",
        " RESET = 0.25 ;Remaining=\t7,  LIMIT=\"16\" ",
    )]));
    assert_eq!(info.limit, Some(16));
    assert_eq!(info.remaining, Some(7));
    assert_eq!(info.reset, ms(250));
}

#[test]
fn structured_header_skips_malformed_parts() {
    let info = RateLimitInfo::from_headers(&headers(&[(
        "ratelimit",
        "limit=abc, remaining=-1, reset=NaN, limit, =5, w=1, limit=40, reset=inf, ,;",
    )]));
    assert_eq!(info.limit, Some(40));
    assert_eq!(info.remaining, None);
    assert_eq!(info.reset, None);
    // A later malformed duplicate does not erase a good value.
    let info = RateLimitInfo::from_headers(&headers(&[(
        "ratelimit",
        "reset=2, limit=3; remaining=4, reset=-2; limit=3.5, remaining=",
    )]));
    assert_eq!(
        (info.limit, info.remaining, info.reset),
        (Some(3), Some(4), ms(2000))
    );
}

#[test]
fn newest_era_wins_field_by_field() {
    let all = [
        ("X-Rate-Limit-Limit", "320"),
        ("X-Rate-Limit-Remaining", "318"),
        ("X-Rate-Limit-Reset", "4.96"),
        ("x-ratelimit-limit", "60, 60;w=1, 100;w=1"),
        ("ratelimit-remaining", "59"),
        ("RateLimit", "limit=100, remaining=50, reset=5"),
    ];
    let info = RateLimitInfo::from_headers(&headers(&all));
    assert_eq!(
        (info.limit, info.remaining, info.reset),
        (Some(100), Some(50), ms(5000))
    );
    assert_eq!(info.window, ms(1000));
    assert!(info.raw_header.unwrap().starts_with("ratelimit: "));

    // A field the newest era garbles or omits falls back to the next newest.
    let mut mixed = all;
    mixed[5] = ("RateLimit", "limit=100, remaining=oops");
    let info = RateLimitInfo::from_headers(&headers(&mixed));
    assert_eq!(
        (info.limit, info.remaining, info.reset),
        (Some(100), Some(59), ms(4960))
    );

    // The 2022 policy list beats the 2017 header; `ratelimit-limit` beats the policy list.
    let info = RateLimitInfo::from_headers(&headers(&all[..4]));
    assert_eq!(info.limit, Some(60));
    let info = RateLimitInfo::from_headers(&headers(&[
        ("x-ratelimit-limit", "60, 60;w=1"),
        ("ratelimit-limit", "61"),
    ]));
    assert_eq!(info.limit, Some(61));

    // Within an era too, a malformed header does not erase a good one.
    let info = RateLimitInfo::from_headers(&headers(&[
        ("x-ratelimit-limit", "60, 60;w=1"),
        ("ratelimit-limit", "sixty"),
    ]));
    assert_eq!(info.limit, Some(60));
}

#[test]
fn retry_after_and_wait_hint() {
    let info = RateLimitInfo::from_headers(&headers(&[
        ("RateLimit", "limit=40, remaining=0, reset=0.87"),
        ("Retry-After", "1"),
    ]));
    assert_eq!(info.retry_after, ms(1000));
    assert_eq!(info.wait_hint(), ms(870), "reset is preferred");

    let info = RateLimitInfo::from_headers(&headers(&[("Retry-After", "3")]));
    assert_eq!(info.wait_hint(), ms(3000));
    assert!(!info.is_empty());
    assert_eq!(info.raw_header, None);

    let info = RateLimitInfo::from_headers(&headers(&[(
        "Retry-After",
        "Wed, 21 Oct 2015 07:28:00 GMT",
    )]));
    assert_eq!(info, RateLimitInfo::default());
    assert!(info.is_empty());
    assert_eq!(info.wait_hint(), None);
}

#[test]
fn nothing_to_learn() {
    assert_eq!(
        RateLimitInfo::from_headers(&HeaderMap::new()),
        RateLimitInfo::default()
    );
    let info = RateLimitInfo::from_headers(&headers(&[("content-type", "application/json")]));
    assert!(info.is_empty());
    // Present but garbled: nothing learned, but the raw header is kept for display.
    let info = RateLimitInfo::from_headers(&headers(&[("ratelimit", "garbage")]));
    assert!(info.is_empty());
    assert_eq!(info.raw_header.as_deref(), Some("ratelimit: garbage"));
}

#[test]
fn legacy_body_nested_as_documented() {
    let body = json!({"error": {"message": "API call count exceeded for this period",
        "rate_reset": 0.87, "rate_limit": 40, "rate_window": 1, "rate_limit_type": "key",
        "rate_endpoint_group": "99ad0b85..."}});
    let mut info = RateLimitInfo::default();
    info.merge_legacy_body(&body);
    assert_eq!(info.reset, ms(870));
    assert_eq!(info.limit, Some(40));
    assert_eq!(info.window, ms(1000));
    assert_eq!(info.limit_type.as_deref(), Some("key"));
    assert_eq!(info.endpoint_group.as_deref(), Some("99ad0b85..."));
    assert_eq!(info.wait_hint(), ms(870));
}

#[test]
fn legacy_body_flat_with_string_reset() {
    let body = json!({"message": "API call count exceeded for this period",
        "rate_reset": "0.87", "rate_limit": "40.0", "rate_limit_type": "org"});
    let mut info = RateLimitInfo::default();
    info.merge_legacy_body(&body);
    assert_eq!((info.reset, info.limit), (ms(870), Some(40)));
    assert_eq!(info.limit_type.as_deref(), Some("org"));
}

#[test]
fn headers_win_over_legacy_body() {
    let mut info = RateLimitInfo::from_headers(&headers(&[(
        "RateLimit",
        "limit=100, remaining=0, reset=5",
    )]));
    info.merge_legacy_body(&json!({"error": {"rate_reset": 0.87, "rate_limit": 40,
        "rate_limit_type": "key"}}));
    assert_eq!((info.reset, info.limit), (ms(5000), Some(100)));
    assert_eq!(info.limit_type.as_deref(), Some("key"));
}

#[test]
fn retry_after_wins_over_the_legacy_body_reset() {
    let mut info = RateLimitInfo::from_headers(&headers(&[("Retry-After", "2")]));
    info.merge_legacy_body(&json!({"error": {"rate_reset": 0.87, "rate_limit": 40}}));
    assert_eq!((info.reset, info.limit), (None, Some(40)));
    assert_eq!(info.wait_hint(), ms(2000));
}

#[test]
fn legacy_body_garbage_is_ignored() {
    for body in [
        Value::Null,
        json!([]),
        json!("API call count exceeded"),
        json!({"error": "The server could not verify that you are authorized"}),
        json!({"error": {"rate_reset": -1, "rate_limit": -40, "rate_window": "x"}}),
        json!({"rate_reset": "NaN", "rate_limit": 40.5, "rate_window": 1e300}),
        json!({"rate_reset": null, "rate_limit": true, "rate_limit_type": 3}),
        json!({"rate_reset": -0.0, "rate_limit": 1e10, "rate_window": "-0"}),
        json!({"rate_reset": [1], "rate_limit": {"n": 1}, "rate_endpoint_group": null}),
    ] {
        let mut info = RateLimitInfo::default();
        info.merge_legacy_body(&body);
        assert_eq!(info, RateLimitInfo::default(), "{body}");
    }
}

#[test]
fn non_ascii_values_are_ignored() {
    let mut map = HeaderMap::new();
    for name in HEADER_NAMES {
        let value = HeaderValue::from_bytes(b"limit=100, remaining=5\xff0, reset=\xe9").unwrap();
        map.insert(name, value);
    }
    assert_eq!(RateLimitInfo::from_headers(&map), RateLimitInfo::default());
    // A readable duplicate after an unreadable one is used.
    map.append("ratelimit", HeaderValue::from_static("limit=7"));
    assert_eq!(RateLimitInfo::from_headers(&map).limit, Some(7));
}

#[test]
fn seconds_and_counts() {
    for (text, nanos) in [
        ("4.96", 4_960_000_000),
        ("0", 0),
        ("0.001", 1_000_000),
        (".5", 500_000_000),
        ("5.", 5_000_000_000),
        ("\"8\"", 8_000_000_000),
        (" 1 ", 1_000_000_000),
        ("0.1234567899", 123_456_789),
        ("3600", 3_600_000_000_000),
        ("003600.000", 3_600_000_000_000),
    ] {
        assert_eq!(
            parse_seconds(text),
            Some(Duration::from_nanos(nanos)),
            "{text}"
        );
    }
    for text in [
        "",
        ".",
        "-1",
        "-0",
        "+1",
        "1e3",
        "inf",
        "NaN",
        "1.2.3",
        "0x10",
        "3600.000000001",
        "3601",
        "99999999999999999999999",
        "1 2",
        "\"",
        "5s",
    ] {
        assert_eq!(parse_seconds(text), None, "{text}");
    }
    assert_eq!(parse_count("40.0"), Some(40));
    assert_eq!(parse_count(&MAX_COUNT.to_string()), Some(MAX_COUNT));
    for text in ["40.5", ".0", "-0", "1000000001", "18446744073709551616", ""] {
        assert_eq!(parse_count(text), None, "{text}");
    }
}
