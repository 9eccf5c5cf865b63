"""deploy/: the Kustomize manifests render and validate against the Kubernetes schemas; the compose
file and the Dockerfile hold what the README promises. Offline: kubernetes-validate ships its schemas."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def render(path: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    out = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in docs}


@pytest.mark.parametrize("variant", ["k8s", "k8s/overlays/socket-mode"])
def test_manifests_render_and_validate_against_the_kubernetes_schemas(variant: str) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    docs = render(DEPLOY / variant)
    version = kubernetes_validate.latest_version()
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)  # raises on any schema violation
    kinds = by_kind(docs)
    assert {"Deployment", "Service", "PodDisruptionBudget", "Job", "ConfigMap"} <= set(kinds)
    assert "Secret" not in kinds  # tokens come from a Secret the operator creates, never from the repo


def test_deployment_is_replicated_probed_bounded_and_non_root() -> None:
    kinds = by_kind(render(DEPLOY / "k8s"))
    deployment = kinds["Deployment"]
    assert deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["args"][:2] == ["run", "--http"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    sources = {next(iter(k for k in s if k != "prefix")): s for s in container["envFrom"]}
    assert sources["secretRef"]["secretRef"]["name"] == "triagebot-secrets"
    config = kinds["ConfigMap"]
    assert sources["configMapRef"]["configMapRef"]["name"] == config["metadata"]["name"]  # hashed name
    assert config["data"]["DATABASE_AUTO_MIGRATE"] == "false"  # the Job migrates, the bots refuse old schemas
    [migrate] = kinds["Job"]["spec"]["template"]["spec"]["containers"]
    assert migrate["args"] == ["db", "upgrade"]
    assert kinds["PodDisruptionBudget"]["spec"]["selector"] == deployment["spec"]["selector"]
    assert kinds["Service"]["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_socket_mode_overlay_keeps_the_probes_on_the_health_port() -> None:
    deployment = by_kind(render(DEPLOY / "k8s" / "overlays" / "socket-mode"))["Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert "--http" not in container["args"] and "--health-port" in container["args"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"


def test_compose_file_runs_migrations_before_the_bot() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"db", "migrate", "bot"} <= set(services)
    assert services["db"]["healthcheck"]["test"]
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    bot = services["bot"]
    assert bot["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert bot["depends_on"]["db"]["condition"] == "service_healthy"
    assert "/healthz" in " ".join(bot["healthcheck"]["test"])
    assert bot["env_file"] == [".env"] and bot["environment"]["DATABASE_AUTO_MIGRATE"] == "false"
    assert "pgdata" in compose["volumes"]


def test_dockerfile_is_multi_stage_non_root_with_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2
    assert re.search(r"^USER (?!0|root)", text, re.M)
    assert re.search(r"^HEALTHCHECK .*", text, re.M) and "/healthz" in text
    assert 'ENTRYPOINT ["triagebot"]' in text
    # everything the image copies exists (a renamed package would break the build)
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for name in src.split():
            assert (DEPLOY.parent / name).exists(), name
