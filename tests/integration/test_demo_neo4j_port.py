"""`atlas demo` starts the project's own Neo4j on ATLAS_NEO4J_BOLT_PORT and every later client of the process
(ingest, the API it serves) reaches that server — not the default 7687 (a first run measured for issue #18
stopped with "unreachable" after training when the port was not the default)."""

from __future__ import annotations

from pathlib import Path

import pytest

from queries.db import Graph
from tests.servers import free_port


def test_demo_clients_reach_the_server_it_started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from atlas_cli import local_neo4j
    from atlas_cli.commands.demo import ensure_neo4j

    port = free_port()
    # setenv first so that monkeypatch restores the variable's original state (absent in CI) afterwards:
    # ensure_neo4j sets NEO4J_URI for the rest of the process, which must not leak into later tests
    monkeypatch.setenv("NEO4J_URI", "unset-by-this-test")
    monkeypatch.delenv("NEO4J_URI")
    monkeypatch.delenv("NEO4J_PASSWORD", raising=False)
    monkeypatch.setenv("ATLAS_NEO4J_HOME", str(tmp_path / "neo4j"))
    monkeypatch.setenv("ATLAS_NEO4J_BOLT_PORT", str(port))
    monkeypatch.setenv("ATLAS_NEO4J_HEAP", "512m")
    monkeypatch.setenv("ATLAS_NEO4J_PAGECACHE", "256m")
    lines: list[str] = []
    try:
        uri = ensure_neo4j(lines.append)
        assert uri == f"bolt://127.0.0.1:{port}"
        with Graph() as graph:  # default settings, as run_demo and the API build them
            graph.verify()
            assert graph.read("RETURN 1 AS one") == [{"one": 1}]
    finally:
        local_neo4j.stop(local_neo4j.LocalNeo4jSettings())
