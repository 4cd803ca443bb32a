//! `--dev`: runs the bundled Close emulator in-process with sample data, so the gateway can be
//! tried with no credentials.

use std::net::SocketAddr;

use crate::close::ClientConfig;
use crate::config::Config;

pub struct DevEmulator;

pub async fn start(
    _config: &Config,
) -> Result<(ClientConfig, DevEmulator), Box<dyn std::error::Error>> {
    Err("dev mode is not available yet".into())
}

pub fn print_instructions(_addr: SocketAddr, _emulator: &DevEmulator) {}
