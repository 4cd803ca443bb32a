//! Shared test harness: an in-process Close emulator and a gateway server on ephemeral ports,
//! started exactly as `main` starts them, and tonic clients to call it.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use close_gateway::close::{ApiKey, ClientConfig, CloseClient};
use close_gateway::emulator::{Emulator, EmulatorConfig, RecordedRequest};
use close_gateway::proto::close::v1::activity_service_client::ActivityServiceClient;
use close_gateway::proto::close::v1::lead_service_client::LeadServiceClient;
use close_gateway::proto::close::v1::raw_service_client::RawServiceClient;
use close_gateway::proto::close::v1::search_service_client::SearchServiceClient;
use close_gateway::proto::close::v1::task_service_client::TaskServiceClient;
use close_gateway::server::{self, ServerOptions};
use close_gateway::services::Gateway;
use close_gateway::services::raw::RawPolicy;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic_types::{ErrorDetails, StatusExt};

/// The API key the default emulator accepts.
pub const TEST_KEY: &str = "test-key";

pub struct TestGateway {
    pub emulator: Emulator,
    pub addr: SocketAddr,
    pub channel: Channel,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.emulator.shutdown();
    }
}

pub async fn start() -> TestGateway {
    start_with(EmulatorConfig::default()).await
}

pub async fn start_with(config: EmulatorConfig) -> TestGateway {
    start_custom(
        config,
        RawPolicy::parse("", close_gateway::config::DEFAULT_RAW_DENY).unwrap(),
    )
    .await
}

pub async fn start_custom(config: EmulatorConfig, raw_policy: RawPolicy) -> TestGateway {
    let emulator_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let emulator = Emulator::start(emulator_listener, config).await.unwrap();
    let client = CloseClient::new(client_config(&emulator.base_url(), TEST_KEY)).unwrap();
    let gateway = Gateway {
        client,
        raw_policy: Arc::new(raw_policy),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        server::run(listener, gateway, ServerOptions::default(), shutdown)
            .await
            .unwrap();
    });
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    TestGateway {
        emulator,
        addr,
        channel,
        stop: Some(stop),
    }
}

pub fn client_config(base_url: &str, key: &str) -> ClientConfig {
    ClientConfig {
        base_url: base_url.to_owned(),
        api_keys: vec![ApiKey::new(key)],
        timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        max_request_bytes: 1 << 20,
        max_response_bytes: 16 << 20,
    }
}

impl TestGateway {
    pub fn leads(&self) -> LeadServiceClient<Channel> {
        LeadServiceClient::new(self.channel.clone())
    }

    pub fn tasks(&self) -> TaskServiceClient<Channel> {
        TaskServiceClient::new(self.channel.clone())
    }

    pub fn activities(&self) -> ActivityServiceClient<Channel> {
        ActivityServiceClient::new(self.channel.clone())
    }

    pub fn search(&self) -> SearchServiceClient<Channel> {
        SearchServiceClient::new(self.channel.clone())
    }

    pub fn raw(&self) -> RawServiceClient<Channel> {
        RawServiceClient::new(self.channel.clone())
    }

    /// Requests the emulator received under `/api/v1` (control endpoints excluded).
    pub fn received(&self) -> Vec<RecordedRequest> {
        self.emulator
            .requests()
            .into_iter()
            .filter(|r| r.path.starts_with("/api/v1/"))
            .collect()
    }

    /// The last request the emulator received, as (method, path without `/api/v1`).
    pub fn last(&self) -> RecordedRequest {
        self.received()
            .pop()
            .expect("the emulator received no request")
    }
}

/// The google.rpc details of an error status.
pub fn details(status: &tonic::Status) -> ErrorDetails {
    status.get_error_details()
}

/// The ErrorInfo reason of an error status.
pub fn reason(status: &tonic::Status) -> String {
    details(status)
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}

/// Field names of the BadRequest violations of an error status.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    details(status)
        .bad_request()
        .map(|br| {
            br.field_violations
                .iter()
                .map(|v| v.field.clone())
                .collect()
        })
        .unwrap_or_default()
}
