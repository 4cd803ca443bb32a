//! The processes a benchmark run starts: Redis, the emulator and the gateway replicas, each
//! a child that is killed when its handle is dropped (normal end, error, panic or Ctrl-C),
//! and whose last lines of output are kept for the error message if it fails.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::error::BenchError;

/// How long a process may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Lines of output kept per process.
const TAIL_LINES: usize = 40;

type Tail = Arc<Mutex<VecDeque<String>>>;
type Kept = Arc<Mutex<Vec<String>>>;

/// A running child process; dropping it kills it.
pub struct Proc {
    name: String,
    _child: Child,
    tail: Tail,
    kept: Kept,
}

impl Proc {
    /// Spawns `cmd` and waits until a line of its stdout satisfies `ready`, returning what
    /// `ready` extracted from it.
    pub async fn start<T>(
        name: &str,
        cmd: Command,
        ready: impl Fn(&str) -> Option<T>,
    ) -> Result<(Proc, T), BenchError> {
        Self::start_keeping(name, cmd, ready, None).await
    }

    /// [`Proc::start`], also keeping every line of stderr that contains `keep`.
    pub async fn start_keeping<T>(
        name: &str,
        mut cmd: Command,
        ready: impl Fn(&str) -> Option<T>,
        keep: Option<&'static str>,
    ) -> Result<(Proc, T), BenchError> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|source| BenchError::Spawn {
            name: name.to_owned(),
            source,
        })?;
        let tail: Tail = Arc::default();
        let kept: Kept = Arc::default();
        let (lines_tx, mut lines) = mpsc::unbounded_channel();
        if let Some(out) = child.stdout.take() {
            tokio::spawn(pump(out, tail.clone(), Some(lines_tx), None));
        }
        if let Some(err) = child.stderr.take() {
            let keep = keep.map(|needle| (needle, kept.clone()));
            tokio::spawn(pump(err, tail.clone(), None, keep));
        }
        let proc = Proc {
            name: name.to_owned(),
            _child: child,
            tail,
            kept,
        };
        let found = tokio::time::timeout(READY_TIMEOUT, async {
            while let Some(line) = lines.recv().await {
                if let Some(found) = ready(&line) {
                    return Some(found);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(found)) => Ok((proc, found)),
            Ok(None) => Err(proc.not_ready("exited before it was ready")),
            Err(_) => Err(proc.not_ready(&format!("no ready line within {READY_TIMEOUT:?}"))),
        }
    }

    fn not_ready(&self, why: &str) -> BenchError {
        let tail = self.tail();
        BenchError::NotReady {
            name: self.name.clone(),
            detail: format!("{why}; last output:\n  {}", tail.join("\n  ")),
        }
    }

    /// The lines kept so far (see [`Proc::start_keeping`]).
    pub fn kept(&self) -> Vec<String> {
        self.kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The last lines the process printed.
    pub fn tail(&self) -> Vec<String> {
        let tail = self.tail.lock().unwrap_or_else(PoisonError::into_inner);
        tail.iter().cloned().collect()
    }
}

/// Copies a child's output into its tail, its first lines to `lines` while anyone
/// listens, and the lines holding `keep`'s needle into its list.
async fn pump(
    out: impl AsyncRead + Unpin,
    tail: Tail,
    mut lines_tx: Option<mpsc::UnboundedSender<String>>,
    keep: Option<(&'static str, Kept)>,
) {
    let mut lines = BufReader::new(out).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some((needle, kept)) = &keep {
            if line.contains(needle) {
                let mut kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
                kept.push(line);
                continue;
            }
        }
        let listening = lines_tx
            .as_ref()
            .is_some_and(|tx| tx.send(line.clone()).is_ok());
        if !listening {
            lines_tx = None;
        }
        let mut tail = tail.lock().unwrap_or_else(PoisonError::into_inner);
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

/// The binaries a run starts.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub gateway: PathBuf,
    pub emulator: PathBuf,
}

impl Binaries {
    /// The gateway and emulator next to the running benchmark. When run by `cargo run`
    /// (and `build`), they are built first with the same profile so that a stale gateway
    /// is never measured.
    pub fn locate(build: bool) -> Result<Binaries, BenchError> {
        let exe = std::env::current_exe().map_err(|e| BenchError::Build(e.to_string()))?;
        let dir = exe.parent().unwrap_or(Path::new(".")).to_path_buf();
        if build {
            build_siblings(&dir)?;
        }
        let find = |name: &'static str| {
            let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
            if path.is_file() {
                Ok(path)
            } else {
                Err(BenchError::MissingBinary { name, path })
            }
        };
        Ok(Binaries {
            gateway: find("close-gateway")?,
            emulator: find("close-emulator")?,
        })
    }
}

fn build_siblings(dir: &Path) -> Result<(), BenchError> {
    let (Some(cargo), Some(manifest_dir)) = (
        std::env::var_os("CARGO"),
        std::env::var_os("CARGO_MANIFEST_DIR"),
    ) else {
        return Ok(());
    };
    let mut cmd = std::process::Command::new(cargo);
    cmd.arg("build")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(Path::new(&manifest_dir).join("Cargo.toml"))
        .args(["--bin", "close-gateway", "--bin", "close-emulator"]);
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("release") => {
            cmd.arg("--release");
        }
        Some("debug") => {}
        // A custom profile or layout: leave the binaries as they are.
        _ => return Ok(()),
    }
    eprintln!("building close-gateway and close-emulator (--no-build to skip)");
    let status = cmd
        .stdout(Stdio::null())
        .status()
        .map_err(|e| BenchError::Build(e.to_string()))?;
    if !status.success() {
        return Err(BenchError::Build(format!(
            "cargo build exited with {status}"
        )));
    }
    Ok(())
}

/// A TCP port that was free a moment ago (Redis cannot be told to pick one itself).
pub fn free_port() -> Result<u16, BenchError> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|source| BenchError::Spawn {
            name: "port probe".to_owned(),
            source,
        })?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|source| BenchError::Spawn {
            name: "port probe".to_owned(),
            source,
        })
}

/// Starts `redis-server` without persistence on a free port; returns it and its URL.
pub async fn start_redis() -> Result<(Proc, String), BenchError> {
    let mut last = None;
    // The port may be taken between the probe and Redis binding it: try a few.
    for _ in 0..3 {
        let port = free_port()?;
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"]);
        let started = Proc::start("redis-server", cmd, |line| {
            line.contains("Ready to accept connections").then_some(())
        })
        .await;
        match started {
            Ok((proc, ())) => return Ok((proc, format!("redis://127.0.0.1:{port}/"))),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or(BenchError::NotReady {
        name: "redis-server".to_owned(),
        detail: "no attempt made".to_owned(),
    }))
}

/// The value after `prefix` on a line that starts with it.
pub fn after<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    line.trim().strip_prefix(prefix).map(str::trim)
}

/// The limiter's debug line for each admitted call, with its queue wait.
pub const ADMITTED: &str = "limiter admitted call";

/// Starts one gateway replica on an ephemeral port; returns it and its address. Its
/// [`ADMITTED`] log lines are kept.
pub async fn start_gateway(
    bin: &Path,
    replica: usize,
    env: &[(String, String)],
) -> Result<(Proc, std::net::SocketAddr), BenchError> {
    let mut cmd = Command::new(bin);
    // Only what the run sets: nothing from the shell (a stray LIMITER_* or REDIS_URL)
    // leaks into the measurement.
    cmd.env_clear().env("LISTEN_ADDR", "127.0.0.1:0");
    for (key, value) in env {
        cmd.env(key, value);
    }
    let name = format!("close-gateway #{replica}");
    let ready = |line: &str| after(line, "close-gateway listening on").and_then(|a| a.parse().ok());
    Proc::start_keeping(&name, cmd, ready, Some(ADMITTED)).await
}
