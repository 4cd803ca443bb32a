//! The Prometheus endpoint of a real `close-gateway` process in front of the emulator: after
//! known calls, `/metrics` shows upstream calls by group and status, 429s, the queue wait
//! histogram by priority, queue depth and the learned limits, with their exact values; the
//! logs show each upstream call at debug and each 429 at warn, and never the API key.

mod limiter_support;
mod replicas_support;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use close_gateway::emulator::{Emulator, EmulatorConfig, HiddenLimit, Limits};
use close_gateway::proto::close::v1::activity_service_client::ActivityServiceClient;
use close_gateway::proto::close::v1::lead_service_client::LeadServiceClient;
use close_gateway::proto::close::v1::task_service_client::TaskServiceClient;
use close_gateway::proto::close::v1::*;
use replicas_support::GatewayProcess;
use serde_json::{Value, json};

/// One sample of the text format: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("series and value");
        let value: f64 = value.parse().expect("sample value");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.strip_suffix('}').expect("closing brace")),
            None => (series, ""),
        };
        let mut map = BTreeMap::new();
        for pair in labels.split(',').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').expect("label");
            map.insert(key.to_owned(), value.trim_matches('"').to_owned());
        }
        samples.push((name.to_owned(), map, value));
    }
    samples
}

/// The value of the series with exactly these labels, if exported.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    samples
        .iter()
        .find(|(n, l, _)| n == name && *l == want)
        .map(|s| s.2)
}

async fn scrape(addr: SocketAddr) -> Vec<Sample> {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("GET /metrics")
        .error_for_status()
        .expect("200")
        .text()
        .await
        .expect("body");
    parse(&text)
}

fn prioritized<T>(message: T, priority: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("x-priority", priority.parse().expect("ascii"));
    request
}

/// Where the gateway's Prometheus endpoint listens, from its log.
async fn metrics_addr(gateway: &GatewayProcess) -> SocketAddr {
    gateway
        .wait_log(|line| {
            let event: Value = serde_json::from_str(line).ok()?;
            if event["message"] != "metrics endpoint listening" {
                return None;
            }
            event["addr"].as_str()?.parse::<SocketAddr>().ok()
        })
        .await
}

async fn start() -> (Emulator, GatewayProcess, SocketAddr) {
    let mut limits = Limits::uniform(100);
    limits.bucket_limits.insert("lead_read".into(), 25);
    limits.bucket_limits.insert("write".into(), 12);
    // One task write per window gets through while 12 are announced.
    let hidden = HiddenLimit {
        limit: Some(1),
        probability: 0.0,
    };
    limits.hidden.insert("write".into(), hidden);
    let config = EmulatorConfig {
        limits,
        ..EmulatorConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let emulator = Emulator::start(listener, config).await.expect("emulator");
    let base_url = emulator.base_url();
    let gateway = replicas_support::spawn(&[
        ("CLOSE_BASE_URL", &base_url),
        ("CLOSE_API_KEY", "test-key"),
        ("METRICS_ADDR", "127.0.0.1:0"),
        ("LOG_FORMAT", "json"),
        ("LOG_LEVEL", "info,close_gateway=debug"),
    ])
    .await;
    let metrics = metrics_addr(&gateway).await;
    (emulator, gateway, metrics)
}

/// The first log event with this message (and `group`), waited for.
async fn logged(gateway: &GatewayProcess, message: &str, group: &str) -> Value {
    gateway
        .wait_log(|line| {
            let event: Value = serde_json::from_str(line).ok()?;
            (event["message"] == message && event["group"] == group).then_some(event)
        })
        .await
}

#[tokio::test]
async fn metrics_show_upstream_calls_429s_queue_waits_and_learned_limits() {
    let (emulator, gateway, metrics) = start().await;
    let lead_id = emulator.insert_lead(json!({"name": "Acme"}));

    let mut leads = LeadServiceClient::new(gateway.channel.clone());
    for _ in 0..3 {
        let request = GetLeadRequest {
            id: lead_id.clone(),
        };
        leads
            .get_lead(prioritized(request, "high"))
            .await
            .expect("GetLead");
    }
    for _ in 0..2 {
        let request = ListLeadsRequest::default();
        leads
            .list_leads(prioritized(request, "low"))
            .await
            .expect("ListLeads");
    }
    // Task writes until one meets the hidden limit (two in a row share a window unless the
    // first ends one); each still succeeds.
    let mut tasks = TaskServiceClient::new(gateway.channel.clone());
    let mut task_calls = 0;
    let throttled = |e: &Emulator| e.stats().buckets.get("write").map_or(0, |b| b.throttled);
    while throttled(&emulator) == 0 {
        assert!(task_calls < 3, "no 429 after {task_calls} task writes");
        let request = CreateTaskRequest {
            lead_id: lead_id.clone(),
            text: "call back".into(),
            ..Default::default()
        };
        tasks.create_task(request).await.expect("CreateTask");
        task_calls += 1;
    }

    let samples = scrape(metrics).await;
    let upstream = |group: &str, status: &str| {
        value(
            &samples,
            "close_gateway_upstream_requests_total",
            &[("group", group), ("status", status)],
        )
    };
    assert_eq!(upstream("lead.read", "2xx"), Some(5.0));
    assert_eq!(upstream("lead.read", "429"), None);
    assert_eq!(upstream("task.write", "2xx"), Some(task_calls as f64));
    assert_eq!(upstream("task.write", "429"), Some(1.0));
    let answers = 5 + task_calls + 1;
    assert_eq!(
        value(
            &samples,
            "close_gateway_upstream_duration_seconds_count",
            &[]
        ),
        Some(answers as f64)
    );

    let group = |g: &'static str| [("group", g)];
    assert_eq!(
        value(&samples, "limiter_throttled_total", &group("task.write")),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, "limiter_learned_limit", &group("lead.read")),
        Some(25.0)
    );
    assert_eq!(
        value(&samples, "limiter_learned_limit", &group("task.write")),
        Some(12.0)
    );

    // Every admission is one observation of the wait histogram, by priority; the 429's
    // retry was admitted again.
    let waits = |group: &str, priority: &str| {
        value(
            &samples,
            "limiter_queue_wait_seconds_count",
            &[("group", group), ("priority", priority)],
        )
    };
    assert_eq!(waits("lead.read", "high"), Some(3.0));
    assert_eq!(waits("lead.read", "low"), Some(2.0));
    assert_eq!(waits("lead.read", "normal"), None);
    assert_eq!(waits("task.write", "normal"), Some((task_calls + 1) as f64));
    let high_inf = value(
        &samples,
        "limiter_queue_wait_seconds_bucket",
        &[("group", "lead.read"), ("priority", "high"), ("le", "+Inf")],
    );
    assert_eq!(high_inf, Some(3.0));
    for priority in ["high", "normal", "low"] {
        let depth = value(
            &samples,
            "limiter_queue_depth",
            &[("group", "lead.read"), ("priority", priority)],
        );
        assert_eq!(depth, Some(0.0), "{priority}");
    }
    // Each upstream call is logged at debug with its group, wait and remaining; each 429 at
    // warn. Neither the API key nor what the calls carried is logged, at any level.
    let call = logged(&gateway, "close call", "lead.read").await;
    assert_eq!(call["level"], "DEBUG", "{call}");
    assert_eq!(call["status"], 200, "{call}");
    assert!(call["waited_ms"].is_u64(), "{call}");
    assert_eq!(call["remaining"], 24, "{call}");
    let throttled = logged(&gateway, "close answered 429", "task.write").await;
    assert_eq!(throttled["level"], "WARN", "{throttled}");
    let logs = gateway.logs();
    for secret in ["test-key", "Acme", "call back"] {
        assert!(!logs.contains(secret), "{secret} logged:\n{logs}");
    }
    let warned = logs.matches(r#""message":"close answered 429""#).count();
    assert_eq!(warned, 1, "{logs}");

    // The emulator agrees with what the gateway counted.
    let stats = emulator.stats();
    assert_eq!(stats.buckets["lead_read"].accepted, 5);
    assert_eq!(
        (
            stats.buckets["write"].accepted,
            stats.buckets["write"].throttled
        ),
        (task_calls, 1)
    );
    drop(gateway);
}

/// A rolling update shows as two versions of the limiter's shared state (see docs/limiter.md,
/// Upgrades): each replica names its own.
#[tokio::test]
async fn metrics_name_the_version_of_the_shared_state() {
    let redis = limiter_support::redis().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let emulator = Emulator::start(listener, EmulatorConfig::default())
        .await
        .expect("emulator");
    let gateway = replicas_support::spawn(&[
        ("CLOSE_BASE_URL", &emulator.base_url()),
        ("CLOSE_API_KEY", "test-key"),
        ("REDIS_URL", &redis.url),
        ("METRICS_ADDR", "127.0.0.1:0"),
        ("LOG_FORMAT", "json"),
        ("LOG_LEVEL", "info"),
    ])
    .await;
    let metrics = metrics_addr(&gateway).await;
    let version = close_gateway::limiter::state_version();
    let logged = gateway
        .wait_log(|line| {
            let event: Value = serde_json::from_str(line).ok()?;
            if event["message"] != "limiter shared through redis" {
                return None;
            }
            event["version"].as_str().map(str::to_owned)
        })
        .await;
    assert_eq!(logged, version);
    let samples = scrape(metrics).await;
    let versions: Vec<&Sample> = samples
        .iter()
        .filter(|(name, _, _)| name == "limiter_state_version")
        .collect();
    assert_eq!(versions.len(), 1, "{versions:?}");
    assert_eq!(
        value(&samples, "limiter_state_version", &[("version", version)]),
        Some(1.0)
    );
}

/// Two replicas sharing Redis create tasks and notes, which this Close counts in one bucket
/// that the group file does not declare: each replica exports both groups as suspected of
/// sharing a bucket (for an alert: declare them as one group), its registry exchanges, and
/// how many other replicas it heard in the registry of windows; a group never compared has no
/// such series.
#[tokio::test]
async fn metrics_show_the_registry_and_groups_suspected_of_sharing_a_bucket() {
    let redis = limiter_support::redis().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut limits = Limits::uniform(20);
    // Never compared with the writes: another limit.
    limits.bucket_limits.insert("lead_read".into(), 25);
    let config = EmulatorConfig {
        limits,
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::start(listener, config).await.expect("emulator");
    let base_url = emulator.base_url();
    let env = [
        ("CLOSE_BASE_URL", base_url.as_str()),
        ("CLOSE_API_KEY", "test-key"),
        ("REDIS_URL", redis.url.as_str()),
        ("METRICS_ADDR", "127.0.0.1:0"),
        ("LOG_FORMAT", "json"),
        ("LOG_LEVEL", "info"),
    ];
    let gateways = [
        replicas_support::spawn(&env).await,
        replicas_support::spawn(&env).await,
    ];
    let metrics = [
        metrics_addr(&gateways[0]).await,
        metrics_addr(&gateways[1]).await,
    ];
    let lead_id = emulator.insert_lead(json!({"name": "Acme"}));

    // Eight windows of both groups, each call through either replica.
    let mut calls = Vec::new();
    for i in 0..160 {
        let channel = gateways[i / 2 % 2].channel.clone();
        let lead_id = lead_id.clone();
        calls.push(tokio::spawn(async move {
            if i % 2 == 0 {
                let task = CreateTaskRequest {
                    lead_id,
                    text: format!("task {i}"),
                    ..Default::default()
                };
                TaskServiceClient::new(channel)
                    .create_task(task)
                    .await
                    .map(|_| ())
            } else {
                let note = CreateNoteActivityRequest {
                    lead_id,
                    note: format!("note {i}"),
                    ..Default::default()
                };
                ActivityServiceClient::new(channel)
                    .create_note_activity(note)
                    .await
                    .map(|_| ())
            }
        }));
    }
    for call in calls {
        call.await.expect("task").expect("call");
    }
    for (i, addr) in metrics.iter().enumerate() {
        let samples = scrape(*addr).await;
        let suspected = |group| value(&samples, "limiter_suspected_shared", &[("group", group)]);
        assert_eq!(suspected("task.write"), Some(1.0), "replica {i}");
        assert_eq!(suspected("activity.write"), Some(1.0), "replica {i}");
        let exchanges = |outcome| {
            value(
                &samples,
                "limiter_registry_exchanges_total",
                &[("outcome", outcome)],
            )
        };
        // Not `failed == None`: under load a registry call may outlast the Redis timeout.
        assert!(exchanges("done").is_some_and(|n| n >= 1.0), "replica {i}");
    }

    // A replica whose calls ended first drops out of the registry 2 s later; calls through
    // both at once show each the other (each exchanges at most every 500 ms, on an answer).
    let heard = |samples: &[Sample]| value(samples, "limiter_registry_replicas", &[]);
    let mut leads = gateways
        .each_ref()
        .map(|g| LeadServiceClient::new(g.channel.clone()));
    let mut round = 0;
    let last = loop {
        assert!(round < 100, "the replicas never heard each other");
        round += 1;
        for client in &mut leads {
            let request = GetLeadRequest {
                id: lead_id.clone(),
            };
            client.get_lead(request).await.expect("GetLead");
        }
        let now = [scrape(metrics[0]).await, scrape(metrics[1]).await];
        if now.iter().all(|samples| heard(samples) == Some(1.0)) {
            break now;
        }
    };
    // Lead reads, of another limit, were never compared with the writes.
    for samples in &last {
        let suspected = value(
            samples,
            "limiter_suspected_shared",
            &[("group", "lead.read")],
        );
        assert_eq!(suspected, None);
    }
}
