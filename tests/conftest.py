"""Fixtures shared by every tier, and markers by directory: tests/integration → neo4j, tests/slow → slow
(+ neo4j where they use it), tests/gpu → gpu.

Neo4j fixtures (``neo4j_settings``, ``graph``, ``atlas_name``) talk to a real Neo4j (NEO4J_URI, default the
project's own server). In CI (CI=true) a missing Neo4j fails the run; locally it skips with the command
that fixes it. Each test gets its own atlas name and removes it afterwards, so tests never see each
other's data. Factories: tests/factories.py (tiny models); servers: tests/servers.py.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from queries.db import Graph
from queries.errors import DatabaseUnavailable
from queries.maintenance import drop_atlas
from queries.schema import ensure_schema
from queries.settings import Neo4jSettings

_MARKERS = {"integration": "neo4j", "slow": "slow", "gpu": "gpu"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(__file__).parent
    for item in items:
        try:
            part = Path(str(item.fspath)).relative_to(root).parts[0]
        except ValueError:
            continue
        marker = _MARKERS.get(part)
        if marker:
            item.add_marker(getattr(pytest.mark, marker))


@pytest.fixture(scope="session")
def neo4j_settings() -> Neo4jSettings:
    return Neo4jSettings()


@pytest.fixture(scope="session")
def graph(neo4j_settings: Neo4jSettings) -> Iterator[Graph]:
    g = Graph(neo4j_settings)
    try:
        g.verify()
    except DatabaseUnavailable as exc:
        g.close()
        if os.environ.get("CI"):
            pytest.fail(f"CI needs a real Neo4j: {exc}", pytrace=False)
        pytest.skip(f"{exc}")
    ensure_schema(g)
    yield g
    g.close()


@pytest.fixture
def atlas_name(graph: Graph) -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    drop_atlas(graph, name)
