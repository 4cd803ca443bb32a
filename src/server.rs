//! The tonic server: every gRPC service, standard health (NOT_SERVING until ready), server
//! reflection v1 and v1alpha, and a graceful shutdown whose drain is bounded.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::proto::close::v1::activity_service_server::ActivityServiceServer;
use crate::proto::close::v1::lead_service_server::LeadServiceServer;
use crate::proto::close::v1::rate_limit_service_server::RateLimitServiceServer;
use crate::proto::close::v1::raw_service_server::RawServiceServer;
use crate::proto::close::v1::search_service_server::SearchServiceServer;
use crate::proto::close::v1::task_service_server::TaskServiceServer;
use crate::services::Gateway;
use crate::services::activity::ActivityService;
use crate::services::lead::LeadService;
use crate::services::rate_limit::RateLimitService;
use crate::services::raw::RawService;
use crate::services::search::SearchService;
use crate::services::task::TaskService;

/// The services whose health is reported, besides the overall `""`.
const SERVICE_NAMES: &[&str] = &[
    "close.v1.LeadService",
    "close.v1.TaskService",
    "close.v1.ActivityService",
    "close.v1.SearchService",
    "close.v1.RawService",
    "close.v1.RateLimitService",
];

#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// How long in-flight calls may take to finish once shutdown begins.
    pub shutdown_grace: Duration,
    pub max_message_bytes: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            shutdown_grace: Duration::from_secs(25),
            max_message_bytes: 16 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("building reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("serving: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("calls still in flight after the {0:?} shutdown grace period")]
    DrainTimeout(Duration),
}

/// Serves on an already bound listener until `shutdown` completes, then drains in-flight calls
/// for at most `options.shutdown_grace`.
pub async fn run(
    listener: TcpListener,
    gateway: Gateway,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    set_health(&health, ServingStatus::NotServing).await;

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let max = options.max_message_bytes;
    let router = Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            LeadServiceServer::new(LeadService::new(gateway.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            TaskServiceServer::new(TaskService::new(gateway.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            ActivityServiceServer::new(ActivityService::new(gateway.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            SearchServiceServer::new(SearchService::new(gateway.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(RateLimitServiceServer::new(RateLimitService::new(
            gateway.clone(),
        )))
        .add_service(
            RawServiceServer::new(RawService::new(gateway))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        );

    // Shutdown in two steps: report NOT_SERVING so that load balancers stop sending, then
    // stop accepting and drain. The drain is bounded: tonic alone would wait forever.
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (begun_tx, begun_rx) = oneshot::channel::<()>();
    let health_on_stop = health.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutdown requested, draining in-flight calls");
        set_health(&health_on_stop, ServingStatus::NotServing).await;
        let _ = begun_tx.send(());
        let _ = stop_tx.send(());
    });

    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let serve = router.serve_with_incoming_shutdown(incoming, async {
        let _ = stop_rx.await;
    });
    set_health(&health, ServingStatus::Serving).await;
    tracing::info!("serving");

    tokio::pin!(serve);
    tokio::select! {
        result = &mut serve => return Ok(result?),
        _ = begun_rx => {}
    }
    match tokio::time::timeout(options.shutdown_grace, serve).await {
        Ok(result) => {
            tracing::info!("drained, exiting");
            Ok(result?)
        }
        Err(_) => Err(ServerError::DrainTimeout(options.shutdown_grace)),
    }
}

async fn set_health(health: &HealthReporter, status: ServingStatus) {
    health.set_service_status("", status).await;
    for name in SERVICE_NAMES {
        health.set_service_status(*name, status).await;
    }
}

/// Listens for SIGTERM and SIGINT from the call on; the future completes on the first.
/// Called before the server announces its address: a signal sent right after that line
/// must drain, not kill the process (the default action until a handler is registered).
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                (Err(error), _) | (_, Err(error)) => {
                    tracing::warn!(%error, "cannot listen for sigterm, waiting for ctrl-c only");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
