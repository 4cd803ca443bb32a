//! A pool of API keys of one organization: calls spread over the per-key buckets, the
//! organization bucket caps the total, and Close never answers 429.

mod common;

use std::sync::Arc;
use std::time::Duration;

use close_gateway::close::{ApiKey, CloseClient};
use close_gateway::emulator::{ApiKey as EmulatorKey, Emulator, EmulatorConfig, Limits};
use close_gateway::proto::close::v1::lead_service_client::LeadServiceClient;
use close_gateway::proto::close::v1::*;
use close_gateway::server::{self, ServerOptions};
use close_gateway::services::Gateway;
use close_gateway::services::raw::RawPolicy;
use serde_json::json;
use tokio::net::TcpListener;

#[tokio::test]
async fn calls_spread_over_the_keys_without_429s() {
    let keys = ["pool-key-a", "pool-key-b"];
    let config = EmulatorConfig {
        api_keys: keys
            .iter()
            .map(|k| EmulatorKey::new(k, "orga_pool"))
            .collect(),
        limits: Limits::uniform(8),
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::start(TcpListener::bind("127.0.0.1:0").await.unwrap(), config)
        .await
        .unwrap();
    let id = emulator.insert_lead(json!({"name": "Pooled"}));

    let mut client_config = common::client_config(&emulator.base_url(), keys[0]);
    client_config.api_keys = keys.iter().map(|k| ApiKey::new(*k)).collect();
    let gateway = Gateway {
        client: CloseClient::new(client_config).unwrap(),
        raw_policy: Arc::new(RawPolicy::default()),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server::run(
        listener,
        gateway,
        ServerOptions::default(),
        std::future::pending(),
    ));
    let leads = LeadServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();

    const CALLS: usize = 40;
    let mut calls = Vec::new();
    for _ in 0..CALLS {
        let mut leads = leads.clone();
        let id = id.clone();
        calls.push(tokio::spawn(async move {
            let mut request = tonic::Request::new(GetLeadRequest { id });
            request.set_timeout(Duration::from_secs(30));
            leads
                .get_lead(request)
                .await
                .map(|r| r.into_inner().lead.unwrap().name)
        }));
    }
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), "Pooled");
    }

    let received = emulator.requests();
    assert_eq!(received.len(), CALLS);
    assert!(
        received.iter().all(|r| r.status == 200),
        "a call was refused"
    );
    let per_key: Vec<usize> = keys
        .iter()
        .map(|k| {
            received
                .iter()
                .filter(|r| r.api_key.as_deref() == Some(*k))
                .count()
        })
        .collect();
    assert_eq!(per_key.iter().sum::<usize>(), CALLS);
    assert!(
        per_key.iter().all(|&n| n > 0),
        "one key carried everything: {per_key:?}"
    );
    let throttled: u64 = emulator.stats().buckets.values().map(|b| b.throttled).sum();
    assert_eq!(throttled, 0);
}
