"""deploy/docker/Dockerfile: hadolint passes, and the image is built the way the docs promise.

No Docker engine runs on the project's machines, so the image is linted and its structure checked here;
building and running it is left to a machine with Docker (docs/deploy.md says what was executed).
"""

from __future__ import annotations

import re
import subprocess

from tests.unit.deploy.deploy_tools import REPO, venv_tool

DOCKERFILE = REPO / "deploy/docker/Dockerfile"


def _hadolint(text: str, tmp_path) -> subprocess.CompletedProcess[str]:
    f = tmp_path / "Dockerfile"
    f.write_text(text)
    return subprocess.run(
        [venv_tool("hadolint"), "--config", str(REPO / "deploy/docker/hadolint.yaml"), str(f)],
        capture_output=True,
        text=True,
    )


def test_hadolint_passes(tmp_path) -> None:
    proc = _hadolint(DOCKERFILE.read_text(), tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_catches_a_regression(tmp_path) -> None:
    # The gate is live: a floating base tag and `cd` in RUN are findings under our config.
    bad = DOCKERFILE.read_text() + "\nFROM python:latest AS extra\nRUN cd /tmp && ls\n"
    proc = _hadolint(bad, tmp_path)
    assert proc.returncode != 0 and "DL3007" in proc.stdout and "DL3003" in proc.stdout, proc.stdout


def test_images_are_multi_stage_non_root_with_healthchecks_and_install_sh() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM \S+ AS (\S+)", text, re.MULTILINE)
    assert {"build-cpu", "build-gpu", "api", "worker-gpu"} <= set(stages)
    assert stages[-1] == "api", "the default target (last stage) must be the API image"
    # The install steps are the project's own script, CPU and GPU flavours.
    assert "RUN bash deploy/install.sh &&" in text and "RUN bash deploy/install.sh --gpu &&" in text
    # Base pinned to an exact version (not a floating tag).
    assert re.search(r"^ARG PYTHON_IMAGE=python:\d+\.\d+\.\d+-slim-\w+", text, re.MULTILINE)
    assert re.search(r"^ARG NODE_IMAGE=node:\d+\.\d+\.\d+-", text, re.MULTILINE)  # the dashboard's Node, pinned too
    for stage in ("api", "worker-gpu"):
        body = text.split(f" AS {stage}\n", 1)[1].split("\nFROM ", 1)[0]
        assert "USER 10001:10001" in body and "HEALTHCHECK" in body, stage
        assert "COPY --from=build-" in body, stage
