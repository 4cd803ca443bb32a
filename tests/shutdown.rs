//! SIGTERM sent to the real `close-gateway` binary with a call in flight: the call completes and
//! the process exits 0; a drain longer than SHUTDOWN_GRACE makes it exit non-zero.
//!
//! The gateway reaches an in-process emulator through a relay that reports each request's
//! arrival and holds the responses until the test opens it, so the call is in flight for as
//! long as the test needs, with no timing involved.

mod common;

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use base64::Engine;
use close_gateway::emulator::{Emulator, EmulatorConfig};
use close_gateway::proto::close::v1::GetLeadRequest;
use close_gateway::proto::close::v1::lead_service_client::LeadServiceClient;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const BIN: &str = env!("CARGO_BIN_EXE_close-gateway");
const LISTENING: &str = "close-gateway listening on ";
/// Bounds that only turn a hang into a failure; nothing waits for them to pass.
const BOUND: Duration = Duration::from_secs(60);

/// Relays TCP connections to `upstream`: requests pass at once (each arrival is reported),
/// responses wait until the gate is opened.
struct Gate {
    addr: SocketAddr,
    arrived: mpsc::UnboundedReceiver<()>,
    open: watch::Sender<bool>,
}

impl Gate {
    async fn start(upstream: SocketAddr) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (arrived_tx, arrived) = mpsc::unbounded_channel();
        let (open, opened) = watch::channel(false);
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(upstream).await else {
                    return;
                };
                let (in_read, mut in_write) = inbound.into_split();
                let (mut out_read, mut out_write) = outbound.into_split();
                let arrived_tx = arrived_tx.clone();
                tokio::spawn(async move {
                    let mut in_read = in_read;
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = in_read.read(&mut buf).await {
                        if n == 0 || out_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        let _ = arrived_tx.send(());
                    }
                    let _ = out_write.shutdown().await;
                });
                let mut opened = opened.clone();
                tokio::spawn(async move {
                    if opened.wait_for(|open| *open).await.is_ok() {
                        let _ = tokio::io::copy(&mut out_read, &mut in_write).await;
                    }
                });
            }
        });
        Gate {
            addr,
            arrived,
            open,
        }
    }

    async fn wait_arrival(&mut self) {
        tokio::time::timeout(BOUND, self.arrived.recv())
            .await
            .expect("no request reached the emulator")
            .expect("the relay stopped");
    }
}

/// The real binary, talking to Close through `gate`, on an ephemeral port.
struct Gateway {
    child: Child,
    addr: SocketAddr,
    stdout: JoinHandle<String>,
    stderr: JoinHandle<String>,
}

impl Gateway {
    async fn start(gate: &Gate, grace: &str) -> Gateway {
        let mut child = Command::new(BIN)
            .env_clear()
            .env("CLOSE_API_KEY", common::TEST_KEY)
            .env("CLOSE_BASE_URL", format!("http://{}/api/v1", gate.addr))
            .env("SHUTDOWN_GRACE", grace)
            .env("LOG_LEVEL", "debug")
            .args(["--listen-addr", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("cannot start close-gateway");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = String::new();
        let addr = loop {
            let line = tokio::time::timeout(BOUND, lines.next_line())
                .await
                .expect("close-gateway did not print its listening line");
            let Some(line) = line.unwrap() else {
                panic!("close-gateway exited before listening; stdout: {seen}");
            };
            seen.push_str(&line);
            seen.push('\n');
            if let Some(addr) = line.strip_prefix(LISTENING) {
                break addr.parse().unwrap();
            }
        };
        let stdout = tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                seen.push_str(&line);
                seen.push('\n');
            }
            seen
        });
        let stderr = tokio::spawn(read_all(child.stderr.take().unwrap()));
        Gateway {
            child,
            addr,
            stdout,
            stderr,
        }
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// Sends SIGTERM and returns once the gateway reports NOT_SERVING, i.e. its shutdown has
    /// begun. The health stream is closed again so that it does not hold up the drain.
    async fn terminate(&self) {
        let mut health = HealthClient::new(self.channel().await);
        let request = HealthCheckRequest {
            service: String::new(),
        };
        let mut statuses = health.watch(request).await.unwrap().into_inner();
        let first = statuses.message().await.unwrap().unwrap();
        assert_eq!(first.status(), ServingStatus::Serving);

        self.send_term();
        loop {
            let next = tokio::time::timeout(BOUND, statuses.message())
                .await
                .expect("no NOT_SERVING after SIGTERM");
            match next {
                Ok(Some(answer)) if answer.status() == ServingStatus::NotServing => return,
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => panic!("health stream ended before NOT_SERVING"),
            }
        }
    }

    fn send_term(&self) {
        let pid = self.child.id().expect("close-gateway already exited");
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(kill.success(), "kill -TERM {pid} failed");
    }

    /// Waits for the process to exit; returns its status, stdout and stderr.
    async fn exit(mut self) -> (ExitStatus, String, String) {
        let status = tokio::time::timeout(BOUND, self.child.wait())
            .await
            .expect("close-gateway did not exit after SIGTERM")
            .unwrap();
        (
            status,
            self.stdout.await.unwrap(),
            self.stderr.await.unwrap(),
        )
    }
}

async fn read_all(mut pipe: impl AsyncRead + Unpin) -> String {
    let mut bytes = Vec::new();
    let _ = pipe.read_to_end(&mut bytes).await;
    String::from_utf8_lossy(&bytes).into_owned()
}

async fn emulator_with_lead() -> (Emulator, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let emulator = Emulator::start(listener, EmulatorConfig::default())
        .await
        .unwrap();
    let id = emulator.insert_lead(json!({"id": "lead_shutdownTest1", "name": "Drain Ltd"}));
    (emulator, id)
}

fn assert_no_key(output: &str) {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:", common::TEST_KEY));
    assert!(
        !output.contains(common::TEST_KEY),
        "the API key is in the output: {output}"
    );
    assert!(
        !output.contains(&basic),
        "the Basic credentials are in the output: {output}"
    );
}

#[tokio::test]
async fn sigterm_lets_the_call_in_flight_complete_and_exits_zero() {
    let (emulator, lead_id) = emulator_with_lead().await;
    let mut gate = Gate::start(emulator.addr()).await;
    let gateway = Gateway::start(&gate, "60s").await;

    let mut leads = LeadServiceClient::new(gateway.channel().await);
    let id = lead_id.clone();
    let call = tokio::spawn(async move { leads.get_lead(GetLeadRequest { id }).await });
    gate.wait_arrival().await;
    gateway.terminate().await;
    gate.open.send_replace(true);

    let answer = call.await.unwrap().expect("the call in flight failed");
    let lead = answer.into_inner().lead.unwrap();
    assert_eq!(lead.id, lead_id);
    assert_eq!(lead.name, "Drain Ltd");

    let (status, stdout, stderr) = gateway.exit().await;
    assert_eq!(status.code(), Some(0), "stdout: {stdout}\nstderr: {stderr}");
    assert_no_key(&stdout);
    assert_no_key(&stderr);
    let received = emulator.requests();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].method, "GET");
    assert_eq!(received[0].path, "/api/v1/lead/lead_shutdownTest1/");
}

/// The signal handlers are in place before the listening line: a SIGTERM sent as soon as it
/// is read drains and exits 0. (Registered later, the default action killed the process:
/// signal 15, seen from the Helm chart's test.)
#[tokio::test]
async fn sigterm_right_after_the_listening_line_exits_zero() {
    let (emulator, _) = emulator_with_lead().await;
    let gate = Gate::start(emulator.addr()).await;
    let gateway = Gateway::start(&gate, "60s").await;
    gateway.send_term();

    let (status, stdout, stderr) = gateway.exit().await;
    assert_eq!(status.code(), Some(0), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.contains("shutdown requested"), "stderr: {stderr}");
}

#[tokio::test]
async fn a_drain_longer_than_the_grace_exits_non_zero() {
    let (emulator, lead_id) = emulator_with_lead().await;
    let mut gate = Gate::start(emulator.addr()).await;
    // The gate never opens: the call cannot finish within any grace.
    let gateway = Gateway::start(&gate, "1s").await;

    let mut leads = LeadServiceClient::new(gateway.channel().await);
    let call = tokio::spawn(async move { leads.get_lead(GetLeadRequest { id: lead_id }).await });
    gate.wait_arrival().await;
    gateway.terminate().await;

    let (status, stdout, stderr) = gateway.exit().await;
    assert_eq!(status.code(), Some(1), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.contains("shutdown grace"), "stderr: {stderr}");
    assert_no_key(&stdout);
    assert_no_key(&stderr);
    // The connection died under the call; how hyper reports that (reset, broken pipe)
    // varies, and tonic maps it to UNKNOWN or UNAVAILABLE.
    let failed = call
        .await
        .unwrap()
        .expect_err("the call outlived the gateway");
    assert!(
        matches!(
            failed.code(),
            tonic::Code::Unknown | tonic::Code::Unavailable
        ),
        "{failed:?}"
    );
}
