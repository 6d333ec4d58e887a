"""Fixtures for the deploy checks: the real helm binary (hadolint and check-jsonschema come with the venv).

In CI (CI=true) a missing tool fails the run; locally the tests skip with the command that installs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.unit.deploy.deploy_tools import REPO, missing


@pytest.fixture(scope="session")
def helm() -> str:
    """ATLAS_HELM, else the one deploy/helm/build-helm.sh built into the cache, else helm on PATH; in CI, build it."""
    explicit = os.environ.get("ATLAS_HELM")
    if explicit:
        return explicit
    cache = Path(os.environ.get("ATLAS_CACHE_DIR", Path.home() / ".cache/feature-atlas")) / "tools"
    built = sorted(cache.glob("helm-*/helm"))
    if built:
        return str(built[-1])
    if shutil.which("helm"):
        return str(shutil.which("helm"))
    if os.environ.get("CI"):  # .ci/run builds it first; this covers a CI run of this file alone
        proc = subprocess.run(["bash", str(REPO / "deploy/helm/build-helm.sh")], capture_output=True, text=True)
        if proc.returncode == 0:
            return proc.stdout.strip().splitlines()[-1]
        pytest.fail(f"could not build helm: {proc.stderr[-800:]}", pytrace=False)
    missing("helm", "bash deploy/helm/build-helm.sh (builds it from the Go module proxy into the cache)")
    raise AssertionError("unreachable")
