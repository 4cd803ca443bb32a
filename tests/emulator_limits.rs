//! The emulator's rate limiting, statistics, control endpoints and fault injection, over
//! real HTTP. The clock is paused so that windows and `reset` values are exact.

mod emulator_support;

use std::collections::BTreeMap;
use std::time::Duration;

use close_gateway::close::ratelimit::RateLimitInfo;
use close_gateway::emulator::{
    ApiKey, BucketStats, EmulatorConfig, Faults, HeaderEra, HiddenLimit, LegacyBody, Limits,
    SecondStats,
};
use emulator_support::start;
use serde_json::{Value, json};

/// Default config with `limit` per key in every bucket.
fn limited(limit: u64) -> EmulatorConfig {
    EmulatorConfig {
        limits: Limits::uniform(limit),
        ..EmulatorConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn every_era_announces_the_limit_in_its_own_headers() {
    let cases: [(HeaderEra, &[(&str, &str)]); 4] = [
        (
            HeaderEra::Current,
            &[("ratelimit", "limit=5, remaining=4, reset=1")],
        ),
        (
            HeaderEra::CurrentLowerSemicolon,
            &[("ratelimit", "limit=5; remaining=4; reset=1")],
        ),
        (
            HeaderEra::Legacy2017,
            &[
                ("x-rate-limit-limit", "5"),
                ("x-rate-limit-remaining", "4"),
                ("x-rate-limit-reset", "1"),
            ],
        ),
        (
            HeaderEra::Era2022,
            &[
                ("x-rate-limit-limit", "5"),
                ("x-rate-limit-remaining", "4"),
                ("x-rate-limit-reset", "1"),
                ("ratelimit-limit", "5"),
                ("ratelimit-remaining", "4"),
                ("ratelimit-reset", "1"),
                ("x-ratelimit-limit", "5, 5;w=1, 15;w=1"),
            ],
        ),
    ];
    for (era, expected) in cases {
        let api = start(EmulatorConfig { era, ..limited(5) }).await;
        let reply = api.get("/lead/").await;
        for (name, value) in expected {
            assert_eq!(reply.header(name), Some(*value), "{era:?} {name}");
        }
        // The gateway's own parser reads every era.
        let info = RateLimitInfo::from_headers(&reply.headers);
        assert_eq!(
            (info.limit, info.remaining, info.reset),
            (Some(5), Some(4), Some(Duration::from_secs(1))),
            "{era:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_429_carries_headers_retry_after_and_the_configured_body() {
    let nested = json!({"error": {"message": "API call count exceeded for this period",
        "rate_reset": 0.87, "rate_limit": 1, "rate_window": 1, "rate_limit_type": "key",
        "rate_endpoint_group": "lead_read"}});
    let flat = json!({"error": "API call count exceeded for this period",
        "rate_reset": "0.87", "rate_limit": 1, "rate_window": 1, "rate_limit_type": "key",
        "rate_endpoint_group": "lead_read"});
    for (legacy_body, body) in [
        (LegacyBody::None, Value::Null),
        (LegacyBody::Nested, nested),
        (LegacyBody::Flat, flat),
    ] {
        let api = start(EmulatorConfig {
            legacy_body,
            ..limited(1)
        })
        .await;
        assert_eq!(api.get("/lead/").await.status, 200);
        tokio::time::advance(Duration::from_millis(130)).await;
        let refused = api.get("/lead/").await;
        assert_eq!(refused.status, 429, "{legacy_body:?}");
        assert_eq!(
            refused.header("ratelimit"),
            Some("limit=1, remaining=0, reset=0.87")
        );
        assert_eq!(refused.header("retry-after"), Some("1"));
        assert_eq!(refused.json(), body, "{legacy_body:?}");
        let mut info = RateLimitInfo::from_headers(&refused.headers);
        info.merge_legacy_body(&refused.json());
        assert_eq!(info.wait_hint(), Some(Duration::from_millis(870)));
    }
}

#[tokio::test(start_paused = true)]
async fn a_refused_request_has_no_side_effect_and_the_window_resets() {
    let api = start(limited(1)).await;
    assert_eq!(api.post("/lead/", json!({"name": "one"})).await.status, 200);
    assert_eq!(api.post("/lead/", json!({"name": "two"})).await.status, 429);
    let leads = api.get("/lead/").await.json();
    assert_eq!(leads["data"].as_array().unwrap().len(), 1);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(api.post("/lead/", json!({"name": "two"})).await.status, 200);
    let statuses: Vec<u16> = api.emu.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 429, 200, 200]);
}

#[tokio::test(start_paused = true)]
async fn groups_sharing_a_bucket_share_its_limit() {
    let api = start(limited(2)).await;
    let lead = api.post("/lead/", json!({"name": "Acme"})).await.json()["id"].clone();
    let task = api
        .post("/task/", json!({"lead_id": lead, "text": "call"}))
        .await;
    assert_eq!(
        task.header("ratelimit"),
        Some("limit=2, remaining=0, reset=1")
    );
    let note = api
        .post("/activity/note/", json!({"lead_id": lead, "note": "x"}))
        .await;
    assert_eq!(note.status, 429);
    let read = api.get(&format!("/lead/{}/", lead.as_str().unwrap())).await;
    assert_eq!(
        (read.status, read.header("ratelimit")),
        (200, Some("limit=2, remaining=1, reset=1"))
    );
}

#[tokio::test(start_paused = true)]
async fn the_organization_limit_spans_its_keys() {
    let mut config = EmulatorConfig {
        legacy_body: LegacyBody::Nested,
        ..limited(2)
    };
    config.api_keys.push(ApiKey::new("second-key", "orga_test"));
    config.limits.org_limits.insert("lead_read".into(), 3);
    let api = start(config).await;
    let as_second = |path: &'static str| api.try_call(Some("second-key"), "GET", path, None);
    assert_eq!(
        api.get("/lead/").await.header("ratelimit"),
        Some("limit=2, remaining=1, reset=1")
    );
    // Key: 0 left of 2; organization: 1 left of 3. The key is closer.
    assert_eq!(
        api.get("/lead/").await.header("ratelimit"),
        Some("limit=2, remaining=0, reset=1")
    );
    // Second key: 1 left of 2; organization: 0 left of 3. The organization is closer.
    let second = as_second("/lead/").await.unwrap();
    assert_eq!(
        second.header("ratelimit"),
        Some("limit=3, remaining=0, reset=1")
    );
    let refused = as_second("/lead/").await.unwrap();
    assert_eq!(refused.status, 429);
    assert_eq!(refused.json()["error"]["rate_limit_type"], "org");
    assert_eq!(refused.json()["error"]["rate_limit"], 3);
}

#[tokio::test(start_paused = true)]
async fn a_hidden_limit_refuses_while_remaining_is_positive() {
    let mut config = limited(5);
    let hidden = HiddenLimit {
        limit: Some(2),
        probability: 0.0,
    };
    config.limits.hidden.insert("lead_read".into(), hidden);
    let api = start(config).await;
    api.get("/lead/").await;
    api.get("/lead/").await;
    let refused = api.get("/lead/").await;
    assert_eq!(refused.status, 429);
    assert_eq!(
        refused.header("ratelimit"),
        Some("limit=5, remaining=3, reset=1")
    );
    assert_eq!(api.emu.stats().buckets["lead_read"].throttled_hidden, 1);
}

#[tokio::test(start_paused = true)]
async fn stats_count_accepted_and_refused_per_bucket_and_second() {
    let api = start(limited(2)).await;
    for _ in 0..3 {
        api.get("/lead/").await;
    }
    tokio::time::advance(Duration::from_secs(1)).await;
    api.post(
        "/data/search/",
        json!({"query": {"type": "object_type", "object_type": "lead"}}),
    )
    .await;
    api.get("/lead/").await;
    let second = |accepted, throttled| SecondStats {
        accepted,
        throttled,
    };
    let lead_read = BucketStats {
        accepted: 3,
        throttled: 1,
        throttled_hidden: 0,
        per_second: BTreeMap::from([(0, second(2, 1)), (1, second(1, 0))]),
    };
    let search = BucketStats {
        accepted: 1,
        throttled: 0,
        throttled_hidden: 0,
        per_second: BTreeMap::from([(1, second(1, 0))]),
    };
    let stats = api.emu.stats();
    assert_eq!(
        stats.buckets,
        BTreeMap::from([("lead_read".into(), lead_read), ("search".into(), search)])
    );
    let served = api.control("GET", "/_emulator/stats", None).await.json();
    assert_eq!(served, serde_json::to_value(&stats).unwrap());
}

#[tokio::test(start_paused = true)]
async fn limits_change_at_run_time() {
    let api = start(limited(10)).await;
    api.emu.set_group_limit("lead_read", 1);
    assert_eq!(
        api.get("/lead/").await.header("ratelimit"),
        Some("limit=1, remaining=0, reset=1")
    );
    assert_eq!(api.get("/lead/").await.status, 429);
    let set = api
        .control(
            "PUT",
            "/_emulator/limits/task_write",
            Some(json!({"limit": 3})),
        )
        .await;
    assert_eq!(
        set.json(),
        json!({"group": "task_write", "bucket": "write", "limit": 3})
    );
    let lead = api.post("/lead/", json!({"name": "x"})).await;
    assert_eq!(
        lead.header("ratelimit"),
        Some("limit=3, remaining=2, reset=1")
    );
    let unknown = api
        .control("PUT", "/_emulator/limits/nope", Some(json!({"limit": 3})))
        .await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn recorded_requests_are_served_and_cleared_over_http() {
    let api = start(EmulatorConfig::default()).await;
    api.post("/lead/?x=1", json!({"name": "Acme"})).await;
    let served: Vec<Value> =
        serde_json::from_str(&api.control("GET", "/_emulator/requests", None).await.text).unwrap();
    assert_eq!(served.len(), 1);
    assert_eq!(served[0]["method"], "POST");
    assert_eq!(served[0]["path"], "/api/v1/lead/");
    assert_eq!(served[0]["query"], json!([["x", "1"]]));
    assert_eq!(served[0]["body"], json!({"name": "Acme"}));
    assert_eq!(served[0]["api_key"], "test-key");
    assert_eq!(served[0]["status"], 200);
    assert_eq!(
        api.control("DELETE", "/_emulator/requests", None)
            .await
            .status,
        204
    );
    assert!(api.emu.requests().is_empty());
}

#[tokio::test]
async fn a_reset_drops_the_connection_without_processing() {
    let api = start(EmulatorConfig::default()).await;
    let faults = Faults {
        reset_rate: 1.0,
        ..Faults::default()
    };
    api.emu.set_faults(faults);
    let key = api.key.clone();
    let failed = api
        .try_call(Some(&key), "POST", "/lead/", Some(json!({"name": "x"})))
        .await;
    assert!(failed.is_err(), "{failed:?}");
    let set = api
        .control("PUT", "/_emulator/faults", Some(json!({"reset_rate": 0.0})))
        .await;
    assert_eq!(
        set.json(),
        json!({"latency_ms": 0, "error_rate": 0.0, "reset_rate": 0.0})
    );
    assert_eq!(api.get("/lead/").await.json()["data"], json!([]));
    let statuses: Vec<u16> = api.emu.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [0, 200]);
    assert_eq!(api.emu.stats().buckets["write"].accepted, 1);
}

#[tokio::test]
async fn gateway_errors_are_processed_only_for_504() {
    let api = start(EmulatorConfig::default()).await;
    api.emu.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let mut answers = Vec::new();
    for n in 0..24 {
        let name = format!("lead {n}");
        let reply = api.post("/lead/", json!({"name": name})).await;
        assert!([502, 503, 504].contains(&reply.status), "{}", reply.status);
        assert_eq!(reply.header("ratelimit"), None);
        if reply.status == 504 {
            assert_eq!(reply.text, "");
        }
        answers.push((name, reply.status));
    }
    api.emu.set_faults(Faults::default());
    let leads = api.get("/lead/").await.json();
    let stored: Vec<&str> = leads["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    for (name, status) in &answers {
        assert_eq!(
            stored.contains(&name.as_str()),
            *status == 504,
            "{name}: {status}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn latency_delays_every_answer() {
    let api = start(EmulatorConfig {
        faults: Faults {
            latency: Duration::from_secs(5),
            ..Faults::default()
        },
        ..EmulatorConfig::default()
    })
    .await;
    let before = tokio::time::Instant::now();
    assert_eq!(api.get("/lead/").await.status, 200);
    assert!(before.elapsed() >= Duration::from_secs(5));
}
