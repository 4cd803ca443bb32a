"""Fixtures shared by the Python tests.

`stubs` generates Python gRPC stubs from proto/ into a temporary directory during the test run
(the same protoc invocation the README shows) and puts it on sys.path. `gateway` starts the real
`close-gateway --dev` binary on an ephemeral port and yields its address. The binary is
$CLOSE_GATEWAY_BIN, else <cargo target dir>/debug/close-gateway (scripts/test builds it).
"""

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from importlib import resources
from pathlib import Path

import grpc
import pytest

ROOT = Path(__file__).resolve().parents[2]
PROTO = ROOT / "proto"
LISTENING = "close-gateway listening on "
# Bounds that only turn a hung process into a failure; nothing waits for them to pass.
START_TIMEOUT = 120
STOP_TIMEOUT = 60


def gateway_binary() -> Path:
    explicit = os.environ.get("CLOSE_GATEWAY_BIN")
    if explicit:
        return Path(explicit)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    if not target.is_absolute():
        target = ROOT / target
    return target / "debug" / "close-gateway"


def generate_stubs(out: Path) -> None:
    """Runs grpc_tools' protoc over every .proto under proto/ into `out`.

    protoc runs as a child process so that, when it fails, its own message is in the error."""
    from grpc_tools import protoc

    well_known = Path(str(resources.files("grpc_tools") / "_proto"))
    if not (well_known / "google" / "protobuf" / "struct.proto").is_file():
        raise RuntimeError(f"grpcio-tools has no well-known protos under {well_known}")
    files = sorted(str(p.relative_to(PROTO)) for p in PROTO.rglob("*.proto"))
    args = [
        sys.executable,
        "-m",
        protoc.__name__,
        f"-I{PROTO}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        *files,
    ]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"protoc exited with {done.returncode}: {' '.join(args)}\n{done.stdout}{done.stderr}"
        )


@pytest.fixture(scope="session")
def stubs(tmp_path_factory):
    out = tmp_path_factory.mktemp("stubs")
    generate_stubs(out)
    sys.path.insert(0, str(out))
    yield out
    sys.path.remove(str(out))


class Process:
    """A started process whose stdout lines are read by a thread, so that its pipe never fills
    and lines can be awaited with a bound."""

    def __init__(self, args, cwd=ROOT, env=None, new_session=False):
        self.args = args
        self.proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=new_session,
        )
        self.lines: "queue.Queue[str | None]" = queue.Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._drain, daemon=True).start()

    @staticmethod
    def _read(pipe, lines):
        for line in pipe:
            lines.put(line)
        lines.put(None)

    def _drain(self):
        for line in self.proc.stderr:
            self.stderr.append(line)

    def wait_for_line(self, prefix: str, timeout: float = START_TIMEOUT) -> str:
        """Returns the first stdout line starting with `prefix`, after the lines before it."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                self.fail(f"no line starting with {prefix!r} within {timeout}s")
            if line is None:
                self.proc.wait(timeout=STOP_TIMEOUT)
                self.fail(f"exited with {self.proc.returncode} before printing {prefix!r}")
            self.stdout.append(line)
            if line.startswith(prefix):
                return line.rstrip("\n")

    def fail(self, message: str):
        pytest.fail(
            f"{self.args}: {message}\n--- stdout:\n{''.join(self.stdout)}"
            f"--- stderr:\n{''.join(self.stderr)}",
            pytrace=False,
        )

    def stop(self, group: bool = False) -> int:
        """Sends SIGTERM (to the whole process group if `group`) and returns the exit code."""
        if self.proc.poll() is None:
            if group:
                os.killpg(self.proc.pid, signal.SIGTERM)
            else:
                self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.fail(f"did not exit within {STOP_TIMEOUT}s of SIGTERM")


# close-gateway's settings (src/config.rs), which a developer's shell may hold.
GATEWAY_SETTINGS = re.compile(
    r"^(CLOSE_.*|REDIS_.*|LIMITER_.*|RAW_.*|LOG_.*|MAX_.*|LISTEN_ADDR|METRICS_ADDR|"
    r"SHUTDOWN_GRACE|UPSTREAM_TIMEOUT|CONNECT_TIMEOUT)$"
)


def gateway_env() -> dict:
    """The caller's environment without close-gateway settings: what a fresh shell has."""
    return {k: v for k, v in os.environ.items() if not GATEWAY_SETTINGS.match(k)}


@pytest.fixture(scope="session")
def gateway():
    """`close-gateway --dev` on an ephemeral port; yields "127.0.0.1:PORT"."""
    binary = gateway_binary()
    if not binary.exists():
        pytest.fail(f"{binary} does not exist: run `cargo build --bins` (scripts/test does)", pytrace=False)
    proc = Process([str(binary), "--dev", "--listen-addr", "127.0.0.1:0"], env=gateway_env())
    line = proc.wait_for_line(LISTENING)
    yield line[len(LISTENING):]
    code = proc.stop()
    if code != 0:
        proc.fail(f"exited with {code} after SIGTERM, expected 0")


@pytest.fixture(scope="session")
def channel(gateway):
    with grpc.insecure_channel(gateway) as ch:
        grpc.channel_ready_future(ch).result(timeout=START_TIMEOUT)
        yield ch
