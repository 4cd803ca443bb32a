//! The emulator process of one phase and its control endpoints: per-bucket statistics,
//! a limit changed mid-run, and the probe that pins its windows to local time.

use std::path::Path;
use std::time::Duration;

use tokio::process::Command;
use tokio::time::Instant;

use super::clock::{EmuClock, parse_reset};
use super::error::BenchError;
use super::procs::{Proc, after};
use super::scenario::Scenario;
use crate::emulator::Stats;

/// The API key the emulator accepts and every client uses.
pub const API_KEY: &str = "bench-key";

/// A running emulator; dropping it kills it.
pub struct EmulatorProc {
    _proc: Proc,
    /// `http://127.0.0.1:PORT/api/v1`.
    pub base_url: String,
    root: String,
    spawned: Instant,
    http: reqwest::Client,
}

impl EmulatorProc {
    /// Starts the emulator with the scenario's limits and the sample data.
    pub async fn start(bin: &Path, scenario: &Scenario) -> Result<EmulatorProc, BenchError> {
        let mut cmd = Command::new(bin);
        cmd.env_clear()
            .env("RUST_LOG", "warn")
            .args(["--listen", "127.0.0.1:0", "--seed"])
            .arg(format!("--api-key={API_KEY}"))
            .args(scenario.emulator_args());
        let spawned = Instant::now();
        let (proc, base_url) = Proc::start("close-emulator", cmd, |line| {
            after(line, "close-emulator listening on").map(str::to_owned)
        })
        .await?;
        let root = base_url.trim_end_matches("/api/v1").to_owned();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| BenchError::Control(e.to_string()))?;
        Ok(EmulatorProc {
            _proc: proc,
            base_url,
            root,
            spawned,
            http,
        })
    }

    /// Pins the emulator's windows to local time from the quickest of three `/me/` probes
    /// (bucket `other`, which no scenario loads).
    pub async fn clock(&self) -> Result<EmuClock, BenchError> {
        let mut best: Option<(Duration, EmuClock)> = None;
        for _ in 0..3 {
            let sent = Instant::now();
            let response = self
                .http
                .get(format!("{}/me/", self.base_url))
                .basic_auth(API_KEY, Some(""))
                .send()
                .await
                .map_err(|e| BenchError::Control(format!("clock probe: {e}")))?;
            let answered = Instant::now();
            let reset = response
                .headers()
                .get("ratelimit")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_reset)
                .ok_or_else(|| BenchError::Control("clock probe: no RateLimit reset".into()))?;
            let rtt = answered.duration_since(sent);
            let clock = EmuClock::from_probe(self.spawned, sent, answered, reset);
            if best.as_ref().is_none_or(|(r, _)| rtt < *r) {
                best = Some((rtt, clock));
            }
        }
        best.map(|(_, c)| c)
            .ok_or_else(|| BenchError::Control("clock probe: no answer".into()))
    }

    /// Accepted and refused requests per bucket and second.
    pub async fn stats(&self) -> Result<Stats, BenchError> {
        let response = self
            .http
            .get(format!("{}/_emulator/stats", self.root))
            .send()
            .await
            .map_err(|e| BenchError::Control(format!("stats: {e}")))?;
        response
            .json()
            .await
            .map_err(|e| BenchError::Control(format!("stats: {e}")))
    }

    /// Changes a bucket's per-key limit now.
    pub async fn set_limit(&self, bucket: &str, limit: u64) -> Result<(), BenchError> {
        let response = self
            .http
            .put(format!("{}/_emulator/limits/{bucket}", self.root))
            .json(&serde_json::json!({ "limit": limit }))
            .send()
            .await
            .map_err(|e| BenchError::Control(format!("set limit: {e}")))?;
        if !response.status().is_success() {
            return Err(BenchError::Control(format!(
                "set limit of {bucket}: {}",
                response.status()
            )));
        }
        Ok(())
    }
}
