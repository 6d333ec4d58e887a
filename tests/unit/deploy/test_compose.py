"""deploy/compose.yaml: valid against the compose-spec JSON schema, and shaped as docs/deploy.md describes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.unit.deploy.deploy_tools import REPO, venv_tool

COMPOSE = REPO / "deploy/compose.yaml"


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
    )


def test_compose_file_matches_the_compose_spec() -> None:
    proc = _validate(COMPOSE)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_validator_rejects_a_misspelt_key(tmp_path: Path) -> None:
    bad = tmp_path / "compose.yaml"
    bad.write_text(COMPOSE.read_text().replace("    healthcheck:\n", "    healthchek:\n", 1))
    proc = _validate(bad)
    assert proc.returncode != 0 and "healthchek" in proc.stdout + proc.stderr


def test_stack_shape() -> None:
    spec = yaml.safe_load(COMPOSE.read_text())
    services = spec["services"]
    assert {"neo4j", "api", "proxy", "ingest"} <= set(services)
    api = services["api"]
    assert api["deploy"]["replicas"] == 2 and "ports" not in api, "two API replicas, published only through the proxy"
    assert "readyz" in " ".join(api["healthcheck"]["test"])
    assert api["depends_on"]["neo4j"]["condition"] == "service_healthy"
    assert (
        api["build"]["dockerfile"] == "deploy/docker/Dockerfile"
        and (REPO / "deploy" / api["build"]["context"] / api["build"]["dockerfile"]).exists()
    )
    for name in ("neo4j", "api", "proxy"):
        assert "healthcheck" in services[name], name
    # Secrets come from the git-ignored env file, never from the compose file itself.
    assert "${NEO4J_PASSWORD:?" in services["neo4j"]["environment"]["NEO4J_AUTH"]
    assert api["env_file"][0]["path"] == ".env"
    assert "deploy/.env" in (REPO / ".gitignore").read_text().split()
    assert (REPO / "deploy/.env.example").exists()
    # The one-shot ingest job: its own profile, a read-only manifest mount, no restart.
    ingest = services["ingest"]
    assert ingest["profiles"] == ["ingest"] and ingest["restart"] == "no"
    assert any(v.endswith(":/manifests:ro") for v in ingest["volumes"])
    # Persistent volumes are declared.
    assert {"neo4j-data", "atlas-cache"} <= set(spec["volumes"])
    # The proxy's upstream is the api service on its port.
    nginx = (REPO / "deploy/compose/nginx.conf").read_text()
    assert "server api:8000" in nginx and "non_idempotent" in nginx
