//! A pool of API keys of one organization: calls spread over the per-key buckets, the
//! organization bucket caps the total, and Close never answers 429; in one process, and in
//! two real gateway processes sharing Redis, configured as an operator would.

mod common;
mod limiter_support;
mod replicas_support;

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
use tonic::transport::Channel;

#[tokio::test]
async fn calls_spread_over_the_keys_without_429s() {
    let keys = ["pool-key-a", "pool-key-b"];
    let (emulator, id) = start_emulator(&keys).await;

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
    get_leads_at_once(&[leads], &id, CALLS).await;

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

/// Four keys of 8 per second could send 32; the organization allows 24 (3 x 8), which two
/// processes sharing Redis learn and keep to, without being told.
#[tokio::test]
async fn two_processes_share_a_pool_under_the_org_limit() {
    let keys = ["pool-key-a", "pool-key-b", "pool-key-c", "pool-key-d"];
    let (emulator, id) = start_emulator(&keys).await;
    let redis = limiter_support::redis().await;
    let base_url = emulator.base_url();
    let pool = keys.join(",");
    let env = [
        ("CLOSE_BASE_URL", base_url.as_str()),
        ("CLOSE_API_KEY", pool.as_str()),
        ("REDIS_URL", redis.url.as_str()),
    ];
    let replicas = [
        replicas_support::spawn(&env).await,
        replicas_support::spawn(&env).await,
    ];

    const CALLS: usize = 72;
    let clients: Vec<_> = replicas
        .iter()
        .map(|r| LeadServiceClient::new(r.channel.clone()))
        .collect();
    get_leads_at_once(&clients, &id, CALLS).await;

    let received = emulator.requests();
    // Before the gateway told the organization's limit from a key's in Close's header
    // (both come as `limit=`), 4 of these were refused.
    let refused: Vec<u16> = received
        .iter()
        .map(|r| r.status)
        .filter(|s| *s != 200)
        .collect();
    assert_eq!(refused, Vec::<u16>::new());
    assert_eq!(received.len(), CALLS);
    for key in keys {
        let carried = received
            .iter()
            .filter(|r| r.api_key.as_deref() == Some(key))
            .count();
        assert!(carried > 0, "{key} carried nothing");
    }
}

/// `calls` GetLead calls at once, dealt round robin to `clients`; each gets the lead.
async fn get_leads_at_once(clients: &[LeadServiceClient<Channel>], id: &str, calls: usize) {
    let mut handles = Vec::new();
    for i in 0..calls {
        let mut leads = clients[i % clients.len()].clone();
        let id = id.to_owned();
        handles.push(tokio::spawn(async move {
            let mut request = tonic::Request::new(GetLeadRequest { id });
            request.set_timeout(Duration::from_secs(60));
            leads
                .get_lead(request)
                .await
                .map(|r| r.into_inner().lead.unwrap().name)
        }));
    }
    for handle in handles {
        assert_eq!(handle.await.unwrap().unwrap(), "Pooled");
    }
}

/// The emulator with `keys` in one organization, 8 calls per second per key (24 for the
/// organization), and the lead the calls read.
async fn start_emulator(keys: &[&str]) -> (Emulator, String) {
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
    (emulator, id)
}
