//! RateLimitService and the limiter as a caller meets them, in process against the emulator:
//! learned limits and their source, a hidden 429 retried out of sight, a malformed
//! `x-priority`, a deadline the queue cannot meet, and groups that seem to share a bucket.

mod common;

use std::time::{Duration, SystemTime};

use close_gateway::emulator::{EmulatorConfig, EndpointGroup, HiddenLimit, Limits};
use close_gateway::proto::close::v1::rate_limit_service_client::RateLimitServiceClient;
use close_gateway::proto::close::v1::*;
use serde_json::json;
use tonic::Code;

fn limited(limit: u64) -> EmulatorConfig {
    EmulatorConfig {
        limits: Limits::uniform(limit),
        ..EmulatorConfig::default()
    }
}

async fn group(gw: &common::TestGateway, name: &str) -> GroupRateLimit {
    let groups = RateLimitServiceClient::new(gw.channel.clone())
        .get_rate_limits(GetRateLimitsRequest {})
        .await
        .expect("GetRateLimits")
        .into_inner()
        .groups;
    groups
        .into_iter()
        .find(|g| g.group == name)
        .unwrap_or_else(|| panic!("group {name} not listed"))
}

fn time_of(ts: &prost_types::Timestamp) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::new(ts.seconds as u64, ts.nanos as u32)
}

async fn get_lead(gw: &common::TestGateway, id: &str) -> Result<Lead, tonic::Status> {
    let request = GetLeadRequest { id: id.to_owned() };
    let lead = gw.leads().get_lead(request).await?.into_inner().lead;
    Ok(lead.expect("a lead"))
}

#[tokio::test]
async fn a_call_teaches_the_group_its_limit_from_the_header() {
    let gw = common::start_with(limited(37)).await;
    let id = gw.emulator.insert_lead(json!({"name": "Acme"}));

    let before = group(&gw, "lead.read").await;
    assert_eq!(before.source, LimitSource::Default as i32);
    assert_eq!((before.limit, before.window_seconds), (20, 1.0));
    assert_eq!(before.learned_at, None);
    assert_eq!(before.last_header, "");

    let start = SystemTime::now();
    get_lead(&gw, &id).await.expect("GetLead");
    let end = SystemTime::now();

    let learned = group(&gw, "lead.read").await;
    assert_eq!(learned.source, LimitSource::Learned as i32);
    assert_eq!((learned.limit, learned.window_seconds), (37, 1.0));
    let at = time_of(learned.learned_at.as_ref().expect("learned_at"));
    assert!(start <= at && at <= end, "{at:?} not within the call");
    let header = learned.last_header.as_str();
    let reset = header
        .strip_prefix("ratelimit: limit=37, remaining=36, reset=")
        .unwrap_or_else(|| panic!("last header {header:?}"));
    let reset: f64 = reset.parse().expect("decimal reset");
    assert!(reset > 0.0 && reset <= 1.0, "{header}");
    assert_eq!(learned.estimated_remaining, 36);
    assert_eq!(learned.throttled_total, 0);
    assert_eq!(learned.paused_until, None);
    assert_eq!(learned.queue_depth_local, [0, 0, 0]);

    // A group no call used keeps its configured default.
    let untouched = group(&gw, "task.write").await;
    assert_eq!(untouched.source, LimitSource::Default as i32);
    assert_eq!(untouched.limit, 20);
}

#[tokio::test]
async fn a_hidden_limit_429_is_retried_and_counted() {
    let mut config = limited(37);
    // Close lets one lead read per window through while announcing 37: the second call of
    // any window meets a 429 with `remaining` above 0.
    let hidden = HiddenLimit {
        limit: Some(1),
        probability: 0.0,
    };
    config.limits.hidden.insert("lead_read".into(), hidden);
    let gw = common::start_with(config).await;
    let id = gw.emulator.insert_lead(json!({"name": "Acme"}));

    // Two calls in a row share a window unless the first ends one; then the third shares
    // the next. Every call succeeds: the 429 is waited out and the call sent again.
    let mut calls = 0;
    let mut throttled = 0;
    while throttled == 0 {
        assert!(calls < 3, "no 429 after {calls} calls");
        let lead = get_lead(&gw, &id).await.expect("GetLead despite the 429");
        assert_eq!(lead.id, id);
        calls += 1;
        throttled = group(&gw, "lead.read").await.throttled_total;
    }
    assert_eq!(throttled, 1);

    let stats = gw.emulator.stats();
    let bucket = &stats.buckets["lead_read"];
    assert_eq!(
        (bucket.accepted, bucket.throttled, bucket.throttled_hidden),
        (calls, 1, 1)
    );
    // The refused request was sent again and answered.
    let statuses: Vec<u16> = gw.received().iter().map(|r| r.status).collect();
    let refused = statuses.iter().position(|s| *s == 429).expect("a 429");
    assert_eq!(statuses.get(refused + 1), Some(&200), "{statuses:?}");
    assert_eq!(statuses.len() as u64, calls + 1);

    let state = group(&gw, "lead.read").await;
    assert_eq!(state.limit, 37);
    assert_eq!(state.source, LimitSource::Learned as i32);
}

#[tokio::test]
async fn a_malformed_priority_is_refused_before_close_is_called() {
    let gw = common::start().await;
    for value in ["urgent", "0", "high,low"] {
        let mut request = tonic::Request::new(GetLeadRequest {
            id: "lead_abc".into(),
        });
        request
            .metadata_mut()
            .insert("x-priority", value.parse().expect("ascii"));
        let status = gw.leads().get_lead(request).await.expect_err(value);
        assert_eq!(status.code(), Code::InvalidArgument, "{value}: {status:?}");
        assert_eq!(common::violated_fields(&status), ["x-priority"], "{value}");
    }
    assert!(gw.received().is_empty(), "{:?}", gw.received());
}

#[tokio::test]
async fn a_deadline_the_queue_cannot_meet_fails_at_once_with_retry_info() {
    let gw = common::start_with(limited(2)).await;
    let id = gw.emulator.insert_lead(json!({"name": "Acme"}));
    // The probe learns 2 calls per second.
    get_lead(&gw, &id).await.expect("probe");

    // A backlog of six seconds' worth, by the same caller at the same priority.
    let mut backlog = Vec::new();
    for _ in 0..12 {
        let mut client = gw.leads();
        let id = id.clone();
        backlog.push(tokio::spawn(async move {
            client.get_lead(GetLeadRequest { id }).await
        }));
    }
    while group(&gw, "lead.read").await.queue_depth_local[1] < 10 {
        tokio::task::yield_now().await;
    }

    let mut request = tonic::Request::new(GetLeadRequest {
        id: "lead_tooLate".into(),
    });
    // Two seconds: about four calls' worth of room, not ten.
    let timeout = Duration::from_secs(2);
    request.set_timeout(timeout);
    let sent_at = std::time::Instant::now();
    let status = gw.leads().get_lead(request).await.expect_err("no room");
    // Refused on arrival, not when the deadline ran out in the line.
    assert!(sent_at.elapsed() < timeout);
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(common::reason(&status), "RATE_LIMITED");
    let details = common::details(&status);
    let retry = details
        .retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo");
    // At least ten calls are ahead at two per second.
    assert!(retry > Duration::from_secs(1), "{retry:?}");
    let sent: Vec<String> = gw.received().into_iter().map(|r| r.path).collect();
    assert!(!sent.iter().any(|p| p.contains("lead_tooLate")), "{sent:?}");

    for call in backlog {
        call.abort();
    }
}

/// Task and note creation, which this Close counts in one bucket (as integrators report of
/// Close) while the gateway's group file keeps them apart: after a few windows of both,
/// `GetRateLimits` names each as seeming to share a bucket with the other, and nothing
/// for a group used alone.
#[tokio::test]
async fn groups_close_counts_together_are_named_as_seeming_to_share_a_bucket() {
    let group_of = |name: &str, bucket: &str, method: &str, path: &str| {
        EndpointGroup::new(name, bucket, &[(method, path)])
    };
    let config = EmulatorConfig {
        groups: vec![
            group_of("lead_read", "lead_read", "GET", "/lead/**"),
            group_of("task_write", "write", "POST", "/task/**"),
            group_of("activity_write", "write", "POST", "/activity/**"),
            group_of("other", "other", "*", "/**"),
        ],
        limits: Limits::uniform(20),
        ..EmulatorConfig::default()
    };
    let gw = common::start_with(config).await;
    let id = gw.emulator.insert_lead(json!({"name": "Acme"}));
    get_lead(&gw, &id).await.expect("GetLead");
    let mut calls = Vec::new();
    for i in 0..100 {
        let (tasks, activities, id) = (gw.tasks(), gw.activities(), id.clone());
        calls.push(tokio::spawn(async move {
            if i % 2 == 0 {
                let task = CreateTaskRequest {
                    lead_id: id,
                    text: format!("task {i}"),
                    ..Default::default()
                };
                tasks.clone().create_task(task).await.map(|_| ())
            } else {
                let note = CreateNoteActivityRequest {
                    lead_id: id,
                    note: format!("note {i}"),
                    ..Default::default()
                };
                activities
                    .clone()
                    .create_note_activity(note)
                    .await
                    .map(|_| ())
            }
        }));
    }
    for call in calls {
        call.await.expect("task").expect("call");
    }
    let task = group(&gw, "task.write").await;
    assert_eq!(task.suspected_shared_with, ["activity.write"]);
    let note = group(&gw, "activity.write").await;
    assert_eq!(note.suspected_shared_with, ["task.write"]);
    assert!(
        group(&gw, "lead.read")
            .await
            .suspected_shared_with
            .is_empty()
    );
}
