"""`atlas serve` serves the built dashboard at / (and its assets), and says how to build it when it is missing."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

import atlas_api.app as app_module
from atlas_api.app import create_app


def test_missing_build_says_how_to_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_module, "DASHBOARD_DIR", tmp_path / "nothing-here")
    r = TestClient(create_app()).get("/")
    assert r.status_code == 503
    assert "npm ci" in r.text and "deploy/install.sh" in r.text and "/graphql" in r.text


def test_serves_index_and_assets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>Feature Atlas</title>")
    (tmp_path / "assets" / "index-abc.js").write_text("console.log(1)")
    monkeypatch.setattr(app_module, "DASHBOARD_DIR", tmp_path)
    client = TestClient(create_app())
    r = client.get("/")
    assert r.status_code == 200 and "Feature Atlas" in r.text and r.headers["cache-control"] == "no-cache"
    a = client.get("/assets/index-abc.js")
    assert a.status_code == 200 and a.text == "console.log(1)"
    assert client.get("/assets/missing.js").status_code == 404
