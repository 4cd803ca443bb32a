//! How Close's failures reach callers: codes, ErrorInfo reasons, RetryInfo, and the POST rule
//! (a create that may have been processed is UNKNOWN / OUTCOME_UNKNOWN, never UNAVAILABLE).

mod common;

use std::sync::Arc;
use std::time::Duration;

use close_gateway::close::CloseClient;
use close_gateway::emulator::{EmulatorConfig, Faults, Limits};
use close_gateway::proto::close::v1::lead_service_client::LeadServiceClient;
use close_gateway::proto::close::v1::*;
use close_gateway::server::{self, ServerOptions};
use close_gateway::services::Gateway;
use close_gateway::services::raw::RawPolicy;
use serde_json::json;
use tokio::net::TcpListener;
use tonic::Code;

fn faulty(faults: Faults) -> EmulatorConfig {
    EmulatorConfig {
        faults,
        ..EmulatorConfig::default()
    }
}

fn create_request() -> CreateLeadRequest {
    CreateLeadRequest {
        lead: Some(Lead {
            name: "Initech".into(),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn server_errors_on_reads_are_unavailable() {
    let gw = common::start_with(faulty(Faults {
        error_rate: 1.0,
        ..Faults::default()
    }))
    .await;
    let status = gw
        .leads()
        .get_lead(GetLeadRequest {
            id: "lead_abc".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(common::reason(&status), "CLOSE_UNAVAILABLE");
}

#[tokio::test]
async fn server_errors_on_creates_are_outcome_unknown() {
    let gw = common::start_with(faulty(Faults {
        error_rate: 1.0,
        ..Faults::default()
    }))
    .await;
    let status = gw.leads().create_lead(create_request()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unknown);
    assert_eq!(common::reason(&status), "OUTCOME_UNKNOWN");
    assert_eq!(
        gw.received().len(),
        1,
        "a create is never retried by the gateway"
    );
}

#[tokio::test]
async fn dropped_connections_on_creates_are_outcome_unknown() {
    let gw = common::start_with(faulty(Faults {
        reset_rate: 1.0,
        ..Faults::default()
    }))
    .await;
    let status = gw.leads().create_lead(create_request()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unknown, "{status:?}");
    assert_eq!(common::reason(&status), "OUTCOME_UNKNOWN");

    let status = gw
        .leads()
        .get_lead(GetLeadRequest {
            id: "lead_abc".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}

#[tokio::test]
async fn rejected_gateway_key_is_internal_not_unauthenticated() {
    let mut config = EmulatorConfig::default();
    config.api_keys[0].key = "another-key".into();
    let gw = common::start_with(config).await;
    let status = gw
        .leads()
        .get_lead(GetLeadRequest {
            id: "lead_abc".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Internal);
    assert_eq!(common::reason(&status), "CLOSE_CREDENTIALS_REJECTED");
    assert!(!status.message().contains(common::TEST_KEY));
}

#[tokio::test]
async fn close_field_errors_become_bad_request() {
    let gw = common::start().await;
    let status = gw
        .tasks()
        .create_task(CreateTaskRequest {
            lead_id: "lead_missing".into(),
            text: "call back".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(common::violated_fields(&status), ["lead"]);
}

#[tokio::test]
async fn throttled_call_without_time_to_wait_carries_retry_info() {
    let mut limits = Limits::uniform(1);
    limits.window = Duration::from_secs(60);
    let gw = common::start_with(EmulatorConfig {
        limits,
        ..EmulatorConfig::default()
    })
    .await;
    let id = gw.emulator.insert_lead(json!({"name": "A"}));
    let mut leads = gw.leads();
    leads
        .get_lead(GetLeadRequest { id: id.clone() })
        .await
        .unwrap();
    let mut request = tonic::Request::new(GetLeadRequest { id });
    request.set_timeout(Duration::from_secs(2));
    let status = leads.get_lead(request).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let details = common::details(&status);
    let delay = details
        .retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo");
    assert!(delay > Duration::from_secs(2), "{delay:?}");
}

#[tokio::test]
async fn unreachable_close_is_unavailable() {
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let client = CloseClient::new(common::client_config(
        &format!("http://{closed}/api/v1"),
        common::TEST_KEY,
    ))
    .unwrap();
    let gateway = Gateway {
        client,
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
    let mut leads = LeadServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let status = leads.create_lead(create_request()).await.unwrap_err();
    assert_eq!(
        status.code(),
        Code::Unavailable,
        "refused: close never saw it"
    );
    assert_eq!(common::reason(&status), "CLOSE_UNREACHABLE");
}
