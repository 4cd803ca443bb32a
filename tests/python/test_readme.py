"""Runs README.md's quick start, its calls and its Python example exactly as written.

A fenced code block counts when the line before it (blank lines aside) is one of these markers:

- `<!-- ci: quickstart -->`: a shell command that starts the gateway. It runs with bash from the
  repository root in the background until it prints `close-gateway listening on ADDR`.
- `<!-- ci: call -->` (one or more): shell commands run with bash from the repository root, one
  block after another, against the running quick start; each must exit 0 and print something.
- `<!-- ci: python-example -->`: a Python file holding a Flask app named `app` with one POST
  route, a webhook handler that reads the gateway's address from $CLOSE_GATEWAY_ADDR (default
  localhost:50051) and imports stubs generated from proto/. The test imports it with the stubs on
  sys.path, posts a Close webhook event for a sample lead through Flask's test client and checks,
  through the gateway, that the handler logged a note on that lead.

PATH is the caller's: scripts/test puts .venv/bin and node_modules/.bin (buf) first.
"""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import LISTENING, ROOT, Process, gateway_env

README = ROOT / "README.md"
MARKER = re.compile(r"^<!--\s*ci:\s*([a-z-]+)\s*-->\s*$")
FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)")
CALL_TIMEOUT = 120


def blocks(text: str) -> dict:
    """{marker kind: [block text, ...]} for every marked fenced block, in order."""
    found: dict = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        marker = MARKER.match(lines[i].strip())
        i += 1
        if not marker:
            continue
        while i < len(lines) and not lines[i].strip():
            i += 1
        fence = FENCE.match(lines[i].strip()) if i < len(lines) else None
        if not fence:
            raise AssertionError(f"README.md:{i}: marker {marker.group(0)} is not followed by a fenced block")
        close = fence.group(1)
        body = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(close):
            body.append(lines[i])
            i += 1
        i += 1
        found.setdefault(marker.group(1), []).append("\n".join(body) + "\n")
    return found


@pytest.fixture(scope="module")
def readme():
    found = blocks(README.read_text())
    assert len(found.get("quickstart", [])) == 1, "README.md needs one <!-- ci: quickstart --> block"
    assert found.get("call"), "README.md needs <!-- ci: call --> blocks"
    assert len(found.get("python-example", [])) == 1, "README.md needs one <!-- ci: python-example --> block"
    return found


@pytest.fixture(scope="module")
def quickstart(readme):
    """The quick start, running as written; yields the address it printed."""
    env = gateway_env()
    # Its own session, so that stopping it stops what it started (cargo run and the gateway).
    proc = Process(["bash", "-euo", "pipefail", "-c", readme["quickstart"][0]], env=env, new_session=True)
    line = proc.wait_for_line(LISTENING)
    yield line[len(LISTENING):]
    proc.stop(group=True)


def test_call_blocks_run_against_the_quick_start(readme, quickstart):
    for block in readme["call"]:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CALL_TIMEOUT,
        )
        assert done.returncode == 0, f"{block}\nexit {done.returncode}\n{done.stdout}\n{done.stderr}"
        assert done.stdout.strip(), f"{block}\nprinted nothing\n{done.stderr}"


def connect_addr(listening: str) -> str:
    """The address to dial for a listening address (0.0.0.0 listens on every interface)."""
    host, _, port = listening.rpartition(":")
    if host in ("0.0.0.0", "[::]"):
        host = "127.0.0.1"
    return f"{host}:{port}"


def test_python_example_logs_a_note_through_the_gateway(readme, quickstart, stubs, tmp_path, monkeypatch):
    import grpc
    from close.v1 import activity_pb2, activity_pb2_grpc, lead_pb2, lead_pb2_grpc

    addr = connect_addr(quickstart)
    monkeypatch.setenv("CLOSE_GATEWAY_ADDR", addr)
    path = tmp_path / "readme_webhook.py"
    path.write_text(readme["python-example"][0])
    spec = importlib.util.spec_from_file_location("readme_webhook", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "readme_webhook", module)
    spec.loader.exec_module(module)

    app = module.app
    routes = [r for r in app.url_map.iter_rules() if "POST" in r.methods]
    assert len(routes) == 1, f"the example should have one POST route: {routes}"

    with grpc.insecure_channel(addr) as channel:
        leads = lead_pb2_grpc.LeadServiceStub(channel)
        activities = activity_pb2_grpc.ActivityServiceStub(channel)
        lead = leads.ListLeads(lead_pb2.ListLeadsRequest(page_size=1), timeout=10).leads[0]

        def notes():
            page = activities.ListActivities(
                activity_pb2.ListActivitiesRequest(
                    lead_id=lead.id, types=[activity_pb2.ACTIVITY_TYPE_NOTE], page_size=100
                ),
                timeout=10,
            )
            return {a.id: a for a in page.activities}

        before = notes()
        event = {
            "event": {
                "id": "ev_readme_test",
                "object_type": "lead",
                "action": "created",
                "object_id": lead.id,
                "lead_id": lead.id,
                "data": {"id": lead.id, "display_name": lead.display_name},
            }
        }
        answer = app.test_client().post(routes[0].rule, json=event)
        assert 200 <= answer.status_code < 300, answer.get_data(as_text=True)

        added = [a for i, a in notes().items() if i not in before]
        assert len(added) == 1, f"the handler logged {len(added)} notes"
        assert added[0].lead_id == lead.id
        assert added[0].note
