//! What can stop the benchmark harness itself (as opposed to figures that miss a target).

use std::path::PathBuf;

/// A failure of the harness: a process that would not start, an endpoint that would not
/// answer. Missed targets are not errors; they are reported.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(
        "cannot find {name} next to the benchmark ({path}); build it with `cargo build --release --bins`"
    )]
    MissingBinary { name: &'static str, path: PathBuf },
    #[error("building the gateway and emulator failed: {0}")]
    Build(String),
    #[error("starting {name}: {source}")]
    Spawn {
        name: String,
        source: std::io::Error,
    },
    #[error("{name} did not become ready: {detail}")]
    NotReady { name: String, detail: String },
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("emulator control endpoint: {0}")]
    Control(String),
    #[error("connecting to gateway {addr}: {detail}")]
    Connect { addr: String, detail: String },
    #[error(
        "unknown scenario {0:?}; known: cold-start, limit-lowered, hidden-limits, shared-bucket, shared-split, other-client"
    )]
    UnknownScenario(String),
    #[error("scenario {0} keeps each group on its own replicas: it needs at least 2 (--replicas)")]
    TooFewReplicas(&'static str),
    #[error("interrupted")]
    Interrupted,
}
