use super::*;

#[test]
fn parses_structured_header() {
    let mut headers = HeaderMap::new();
    headers.insert(
        "ratelimit",
        "limit=160; remaining=159; reset=8".parse().unwrap(),
    );
    let info = RateLimitInfo::from_headers(&headers);
    assert_eq!(info.limit, Some(160));
    assert_eq!(info.remaining, Some(159));
    assert_eq!(info.reset, Some(Duration::from_secs(8)));
}
