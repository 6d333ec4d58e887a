"""Shared helpers for the deploy checks (a plain module: tests import it, never conftest)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def missing(what: str, fix: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI needs {what}: {fix}", pytrace=False)
    pytest.skip(f"{what} is missing: {fix}")


def venv_tool(name: str) -> str:
    """A console script installed beside this interpreter (the project's venv), else one on PATH."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        missing(name, "bash deploy/install.sh (it is a dev dependency in pyproject.toml)")
    return str(found)
