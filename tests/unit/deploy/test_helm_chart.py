"""deploy/helm/feature-atlas rendered by the real helm, every object validated against Kubernetes' schemas.

Two value sets: the defaults (plus the one required password) and ci/gpu-cluster-values.yaml (GPU ingest Job,
steering worker, Neo4j cluster routing URI + read servers, Ingress). Mistakes in values fail with one message.
"""

from __future__ import annotations

import subprocess
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.unit.deploy.deploy_tools import REPO

CHART = REPO / "deploy/helm/feature-atlas"
KUBE_VERSION = "1.31.0"


def _render(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    # --kube-version: a helm built with plain `go install` reports Kubernetes 1.20 (release builds stamp it).
    return subprocess.run(
        [helm, "template", "atlas", str(CHART), "--kube-version", KUBE_VERSION, *args], capture_output=True, text=True
    )


def _objects(helm: str, *args: str) -> list[dict[str, Any]]:
    proc = _render(helm, *args)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def _validate_all(objs: list[dict[str, Any]]) -> None:
    for obj in objs:
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message} at {list(exc.path)}")


def _by_kind(objs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for o in objs:
        out.setdefault(o["kind"], []).append(o)
    return out


def _container(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]["containers"][0]


def test_default_values_render_valid_objects(helm: str) -> None:
    objs = _objects(helm, "--set", "neo4j.password=s3cret")
    _validate_all(objs)
    kinds = _by_kind(objs)
    assert set(kinds) == {
        "Secret",
        "Service",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }
    api = _container(kinds["Deployment"][0])
    assert (
        api["readinessProbe"]["httpGet"]["path"] == "/readyz" and api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    )
    assert api["resources"]["limits"]["cpu"] and "nvidia.com/gpu" not in api["resources"]["limits"]
    env = {e["name"]: e for e in api["env"]}
    assert env["NEO4J_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "neo4j-password"
    assert "ATLAS_API_STEER_WORKER_URL" not in env  # in-process steering stays the default
    hpa = kinds["HorizontalPodAutoscaler"][0]["spec"]
    assert hpa["minReplicas"] == 2 and kinds["PodDisruptionBudget"][0]["spec"]["minAvailable"] == 1


def test_gpu_cluster_values_render_valid_objects(helm: str) -> None:
    objs = _objects(helm, "-f", str(CHART / "ci/gpu-cluster-values.yaml"))
    _validate_all(objs)
    kinds = _by_kind(objs)
    assert {"Job", "Ingress"} <= set(kinds) and len(kinds["Deployment"]) == 2 and len(kinds["NetworkPolicy"]) == 3
    assert "Secret" not in kinds  # both secrets are existing ones
    deployments = {d["metadata"]["name"]: d for d in kinds["Deployment"]}
    worker = _container(deployments["atlas-feature-atlas-steer-worker"])
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1 and worker["image"].endswith("-gpu")
    job = kinds["Job"][0]["spec"]["template"]["spec"]
    assert job["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert (
        job["nodeSelector"] == {"nvidia.com/gpu.present": "true"} and job["tolerations"][0]["key"] == "nvidia.com/gpu"
    )
    api_env = {e["name"]: e.get("value") for e in _container(deployments["atlas-feature-atlas-api"])["env"]}
    assert api_env["NEO4J_URI"].startswith("neo4j://")  # routing URIs pass through untouched
    assert api_env["NEO4J_READ_URIS"] == "bolt://atlas-read-0:7687,bolt://atlas-read-1:7687"
    assert api_env["ATLAS_API_STEER_WORKER_URL"] == "http://atlas-feature-atlas-steer-worker:8100"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--set", "neo4j.password=x", "--set", "api.resources.limits.nvidia\\.com/gpu=1"],
            "api.resources.limits requests a GPU (nvidia.com/gpu): the API replicas do not run the model",
        ),
        ([], "neo4j.password is empty and neo4j.existingSecret is not set"),
        (["--set", "neo4j.password=x", "--set", "api.replicaz=3"], "Additional property replicaz is not allowed"),
        (["--set", "neo4j.password=x", "--set", "neo4j.uri=http://db:7474"], "neo4j.uri"),
        (
            ["--set", "neo4j.password=x", "--set", "api.podDisruptionBudget.minAvailable=2"],
            "api.podDisruptionBudget.minAvailable (2) must be below the API replica count (2)",
        ),
    ],
)
def test_bad_values_fail_with_one_clear_message(helm: str, args: list[str], message: str) -> None:
    proc = _render(helm, *args)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
