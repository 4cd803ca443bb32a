//! `--dev`: runs the bundled Close emulator in-process with sample data, so the gateway can be
//! tried with no credentials. Never for production: the "Close" behind it forgets everything
//! at exit.

use std::net::SocketAddr;

use crate::close::{ApiKey, ClientConfig};
use crate::config::Config;
use crate::emulator::{DEV_LEAD_ID, Emulator, EmulatorConfig};

/// Starts the emulator on a free loopback port and returns the client settings that reach it.
pub async fn start(
    config: &Config,
) -> Result<(ClientConfig, Emulator), Box<dyn std::error::Error>> {
    let emulator_config = EmulatorConfig::dev();
    let key = emulator_config
        .api_keys
        .first()
        .map(|k| k.key.clone())
        .ok_or("the dev emulator has no API key")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let emulator = Emulator::start(listener, emulator_config).await?;
    tracing::warn!(base_url = %emulator.base_url(), "dev mode: using the bundled close emulator, not close");
    let client = ClientConfig {
        base_url: emulator.base_url(),
        api_keys: vec![ApiKey::new(key)],
        timeout: config.upstream_timeout,
        connect_timeout: config.connect_timeout,
        max_request_bytes: config.max_request_bytes,
        max_response_bytes: config.max_response_bytes,
    };
    Ok((client, emulator))
}

/// Tells the person who ran `--dev` how to call the gateway.
pub fn print_instructions(addr: SocketAddr, emulator: &Emulator) {
    let target = match addr.ip().is_unspecified() {
        true => format!("127.0.0.1:{}", addr.port()),
        false => addr.to_string(),
    };
    println!(
        "dev mode: Close emulator with sample data at {}",
        emulator.base_url()
    );
    println!("Try it:");
    println!(
        "  grpcurl -plaintext -d '{{\"id\": \"{DEV_LEAD_ID}\"}}' {target} close.v1.LeadService/GetLead"
    );
    println!(
        "  buf curl --protocol grpc --http2-prior-knowledge -d '{{\"id\": \"{DEV_LEAD_ID}\"}}' http://{target}/close.v1.LeadService/GetLead"
    );
}
