"""deploy/ agrees with the server: the probes' paths and ports, the drain period, the metric
the autoscaler follows, the configs the workers serve. (Docker cannot run here: the image is
checked as text, never built.)"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import yaml

from voxpipe.config import parse_config
from voxpipe.serve import DEFAULT_PORT, Limits
from voxpipe.serve.app import HEALTH_PATH, METRICS_PATH, READY_PATH
from voxpipe.serve.connection import FLUSH_TIMEOUT_S
from voxpipe.serve.metrics import ServeMetrics

DEPLOY = Path(__file__).parent.parent / "deploy"


def manifests() -> dict[str, dict[str, Any]]:
    """Every object in deploy/k8s, by kind."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            assert document["kind"] not in found, f"two {document['kind']}s"
            found[document["kind"]] = document
    assert set(found) == {"ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler"}
    return found


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_the_probes_ask_the_servers_routes_on_its_port() -> None:
    deployment = manifests()["Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": DEFAULT_PORT}
    for probe, path in (("readinessProbe", READY_PATH), ("livenessProbe", HEALTH_PATH)):
        check = container[probe]["httpGet"]
        assert check["path"] == path
        assert ports.get(check["port"], check["port"]) == DEFAULT_PORT
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == METRICS_PATH
    assert int(annotations["prometheus.io/port"]) == DEFAULT_PORT


def test_kubernetes_waits_longer_than_the_drain() -> None:
    spec = manifests()["Deployment"]["spec"]["template"]["spec"]
    args = spec["containers"][0]["args"]
    grace_s = float(flag(args, "--grace-s"))
    assert spec["terminationGracePeriodSeconds"] > grace_s + FLUSH_TIMEOUT_S


def test_the_service_and_the_autoscaler_point_at_the_workers() -> None:
    found = manifests()
    deployment, service = found["Deployment"], found["Service"]
    hpa = found["HorizontalPodAutoscaler"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    name = metric["pods"]["metric"]["name"]
    exposed = {family.name for family in ServeMetrics().registry.collect()}
    assert name in exposed
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    average = float(metric["pods"]["target"]["averageValue"])
    assert 0 < average < int(flag(args, "--max-sessions"))


def test_the_configs_the_workers_serve_are_valid() -> None:
    config_map = manifests()["ConfigMap"]
    parse_config(tomllib.loads(config_map["data"]["agent.toml"]), "configmap agent.toml")
    parse_config(tomllib.loads((DEPLOY / "agent.toml").read_text()), "deploy/agent.toml")
    args = manifests()["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]
    Limits(max_sessions=int(flag(args, "--max-sessions")), grace_s=float(flag(args, "--grace-s")))


def test_the_image_installs_the_serve_extra_and_listens_on_every_address() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.1[1-9]-slim$", dockerfile, re.M)
    assert re.search(r"pip install '\.\[serve\]'", dockerfile)
    assert re.search(rf"^EXPOSE {DEFAULT_PORT}$", dockerfile, re.M)
    entry = re.search(r"^ENTRYPOINT (\[.*\])$", dockerfile, re.M)
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, re.M)
    assert entry and cmd
    command = yaml.safe_load(entry.group(1)) + yaml.safe_load(cmd.group(1))  # JSON arrays
    assert command[:2] == ["voxpipe", "serve"]
    assert flag(command, "--host") == "0.0.0.0"
    assert int(flag(command, "--port")) == DEFAULT_PORT
    config = flag(command, "--config")
    assert f"COPY deploy/agent.toml {config}" in dockerfile, shlex.join(command)
