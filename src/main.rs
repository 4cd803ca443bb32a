//! `close-gateway`: parses configuration, starts logging, binds the listener and runs the server.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use close_gateway::close::{ClientConfig, CloseClient};
use close_gateway::config::Config;
use close_gateway::limiter::{Limiter, state_version};
use close_gateway::server::{self, ServerOptions};
use close_gateway::services::Gateway;
use close_gateway::services::raw::RawPolicy;
use close_gateway::{dev, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    if let Err(error) = telemetry::init_logging(config.log_format, &config.log_level) {
        eprintln!("close-gateway: {error}");
        return ExitCode::from(2);
    }
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "close-gateway stopped");
            eprintln!("close-gateway: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    // --dev swaps Close for an in-process emulator with sample data and a dev key.
    let (client_config, dev_emulator) = if config.dev {
        let (client_config, emulator) = dev::start(&config).await?;
        (client_config, Some(emulator))
    } else {
        (config.client_config()?, None)
    };
    let raw_policy = RawPolicy::parse(&config.raw_allow, &config.raw_deny)?;
    // Before the limiter, so that what it records while starting is exported too.
    if let Some(addr) = config.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("METRICS_ADDR {addr}: {e}"))?;
        let handle = telemetry::metrics_handle()?;
        tracing::info!(addr = %listener.local_addr()?, "metrics endpoint listening");
        tokio::spawn(telemetry::serve_metrics(listener, handle));
    }
    let limiter = start_limiter(&config, &client_config).await?;
    let gateway = Gateway {
        client: CloseClient::with_limiter(client_config, limiter)?,
        raw_policy: Arc::new(raw_policy),
    };
    let listener = tokio::net::TcpListener::bind(config.listen_addr)
        .await
        .map_err(|e| format!("LISTEN_ADDR {}: {e}", config.listen_addr))?;
    let addr = listener.local_addr()?;
    let shutdown = server::shutdown_signal();
    // Tests and the quick start read this line to find the port.
    println!("close-gateway listening on {addr}");
    if let Some(emulator) = &dev_emulator {
        dev::print_instructions(addr, emulator);
    }
    let options = ServerOptions {
        shutdown_grace: config.shutdown_grace,
        max_message_bytes: config.max_grpc_message_bytes,
    };
    server::run(listener, gateway, options, shutdown).await?;
    Ok(())
}

/// Redis Cluster, single Redis, or (neither configured) in-process for a single replica.
async fn start_limiter(
    config: &Config,
    client: &ClientConfig,
) -> Result<Limiter, Box<dyn std::error::Error>> {
    let limiter_config = config.limiter_config(&client.api_keys)?;
    if let Some(nodes) = &config.redis_cluster_nodes {
        let seeds: Vec<String> = nodes
            .expose()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let limiter = Limiter::redis_cluster(limiter_config, &seeds)
            .await
            .map_err(|e| format!("REDIS_CLUSTER_NODES: {e}"))?;
        tracing::info!(
            nodes = seeds.len(),
            version = state_version(),
            "limiter shared through redis cluster"
        );
        return Ok(limiter);
    }
    if let Some(url) = &config.redis_url {
        let limiter = Limiter::redis(limiter_config, url.expose())
            .await
            .map_err(|e| format!("REDIS_URL: {e}"))?;
        tracing::info!(version = state_version(), "limiter shared through redis");
        return Ok(limiter);
    }
    tracing::warn!("no REDIS_URL: in-process limiter, correct for a single replica only");
    Ok(Limiter::in_process(limiter_config))
}
