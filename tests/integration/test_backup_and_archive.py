"""Backups (neo4j-admin dump/load, server stopped and started by the command) and the portable atlas archive,
round-tripped exactly. Uses its OWN Neo4j server (temporary home, free port) besides the shared one: the
archive goes from the shared server into the private one, the dump from the private one back into itself."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atlas_cli import local_neo4j
from queries.db import Graph
from queries.errors import AtlasError, InvalidInput
from queries.maintenance import drop_atlas
from queries.portable import edge_checksum, export_atlas, import_atlas
from queries.schema import ensure_schema
from queries.settings import Neo4jSettings
from tests.hand_atlas import HandAtlas
from tests.servers import free_port


def _j(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def whole_graph(g: Graph) -> tuple[list[str], list[str]]:
    """Every node (labels + properties) and every edge (its endpoints, type, properties), sorted."""
    nodes = sorted(_j([sorted(r["l"]), r["p"]]) for r in g.read("MATCH (n) RETURN labels(n) AS l, properties(n) AS p"))
    edges = sorted(
        _j([sorted(r["la"]), r["a"], r["t"], r["p"], sorted(r["lb"]), r["b"]])
        for r in g.read(
            "MATCH (a)-[r]->(b) RETURN labels(a) AS la, properties(a) AS a, type(r) AS t, properties(r) AS p, labels(b) AS lb, properties(b) AS b"
        )
    )
    return nodes, edges


def one_atlas(g: Graph, atlas: str) -> dict[str, Any]:
    return {
        "atlas": _j(g.read("MATCH (a:Atlas {name: $a}) RETURN properties(a) AS p", {"a": atlas})),
        "saes": sorted(
            _j(r["p"])
            for r in g.read("MATCH (:Atlas {name: $a})-[:HAS_SAE]->(s) RETURN properties(s) AS p", {"a": atlas})
        ),
        "features": sorted(
            _j(r["p"]) for r in g.read("MATCH (f:Feature {atlas: $a}) RETURN properties(f) AS p", {"a": atlas})
        ),
        "edges": sorted(
            _j([r["s"], r["t"], r["p"]])
            for r in g.read(
                "MATCH (s:Feature {atlas: $a})-[r:FLOWS_TO]->(t) RETURN s.uid AS s, t.uid AS t, properties(r) AS p",
                {"a": atlas},
            )
        ),
    }


@pytest.fixture(scope="module")
def private(
    tmp_path_factory: pytest.TempPathFactory, graph: Graph
) -> Iterator[tuple[local_neo4j.LocalNeo4jSettings, Graph]]:
    s = local_neo4j.LocalNeo4jSettings(
        home=tmp_path_factory.mktemp("neo4j-backup"), bolt_port=free_port(), heap="512m", pagecache="64m"
    )
    try:
        local_neo4j.start(s)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"could not start a private Neo4j for the backup tests: {exc}")
    try:
        assert s.password_file.stat().st_mode & 0o777 == 0o600 and s.password not in (
            "",
            "feature-atlas",
        )  # a generated password
        g = Graph(Neo4jSettings(uri=s.bolt_uri, password=s.password, connect_timeout_s=2.0))
        ensure_schema(g)
        yield s, g
        g.close()
    finally:
        local_neo4j.stop(s)


def test_archive_round_trip_into_a_second_server(graph: Graph, private: tuple[Any, Graph], tmp_path: Path) -> None:
    _, other = private
    atlas = HandAtlas(f"test-arch-{uuid.uuid4().hex[:8]}")
    atlas.write(graph)
    try:
        graph.write(
            "MATCH (f:Feature {uid: $u}) SET f.label = 'zebra', f.top_contexts = ['a b', 'c']",
            {"u": atlas.uid(1, "res", 3)},
        )
        graph.write(
            "MATCH (a:Atlas {name: $a}) SET a.created_at = datetime(), a.day = date('2026-01-31')", {"a": atlas.name}
        )
        archive = tmp_path / "a.atlas.tar"
        out = export_atlas(graph, atlas.name, archive)
        assert out.features > 10 and out.edges > 10
        back = import_atlas(other, archive)
        assert back == out
        assert one_atlas(other, atlas.name) == one_atlas(graph, atlas.name)  # every property, datetimes included
        assert edge_checksum(other, atlas.name) == edge_checksum(graph, atlas.name)
        with pytest.raises(InvalidInput, match="already exists"):
            import_atlas(other, archive)
        other.write("MATCH (f:Feature {uid: $u}) SET f.label = 'changed'", {"u": atlas.uid(1, "res", 3)})
        import_atlas(other, archive, replace=True)
        assert one_atlas(other, atlas.name) == one_atlas(graph, atlas.name)
        (tmp_path / "junk.tar").write_bytes(b"not a tar")
        with pytest.raises(InvalidInput, match="not a readable feature-atlas archive"):
            import_atlas(other, tmp_path / "junk.tar")
    finally:
        drop_atlas(graph, atlas.name)


def test_backup_restore_round_trip(private: tuple[local_neo4j.LocalNeo4jSettings, Graph], tmp_path: Path) -> None:
    s, g = private
    atlas = HandAtlas(f"test-bak-{uuid.uuid4().hex[:8]}")
    atlas.write(g)
    g.write(
        "CREATE (:SteeringRun {id: 'r1', atlas: $a, created_at: datetime('2026-01-02T03:04:05.123456789Z'), prompts: ['x']})",
        {"a": atlas.name},
    )
    before = whole_graph(g)
    assert len(before[0]) > 10 and len(before[1]) > 10
    dump = tmp_path / "backups" / "b1"
    assert (
        local_neo4j.backup(s, dump).stat().st_size > 0 and local_neo4j.status(s).running
    )  # stopped for the dump, started again
    drop_atlas(g, atlas.name)
    g.write("CREATE (:Junk {x: 1})")
    assert whole_graph(g) != before
    local_neo4j.restore(s, dump)
    assert local_neo4j.status(s).running
    g.driver.close()
    g2 = Graph(Neo4jSettings(uri=s.bolt_uri, password=s.password, connect_timeout_s=2.0))
    try:
        assert whole_graph(g2) == before  # every node, edge and property
    finally:
        g2.close()
    # The analysts' copy (docs/api.md): the same server restarted read-only refuses writes and still reads.
    local_neo4j.stop(s)
    ro = s.model_copy(update={"read_only": True})
    local_neo4j.start(ro)
    try:
        with Graph(Neo4jSettings(uri=ro.bolt_uri, password=ro.password, connect_timeout_s=2.0)) as g3:
            assert whole_graph(g3) == before
            with pytest.raises(AtlasError):
                g3.write("CREATE (:Junk {x: 2})")
            assert g3.read("MATCH (j:Junk) RETURN count(j) AS n")[0]["n"] == 0
    finally:
        local_neo4j.stop(ro)
        local_neo4j.start(s)
