"""`atlas cypher` against the tricky cases: every write path a READ transaction must refuse (subqueries, LOAD CSV,
write procedures, apoc, admin commands), and what it would allow but we refuse from the plan. Each case checks
that nothing changed in the graph."""

from __future__ import annotations

from pathlib import Path

import pytest

from atlas_cli.commands.cypher import run_read_only
from queries.db import Graph
from queries.errors import InvalidInput

WRITES = {
    "create": "CREATE (:RoProbe {x: 1})",
    "merge": "MERGE (:RoProbe {x: 1})",
    "subquery writes": "CALL { CREATE (:RoProbe {x: 2}) } RETURN 1 AS one",
    "subquery sets an outer node": "MATCH (n) WITH n LIMIT 1 CALL { WITH n SET n.ro_probe = 1 } RETURN count(*) AS c",
    "subquery in transactions": "UNWIND [1, 2] AS i CALL { WITH i CREATE (:RoProbe {x: i}) } IN TRANSACTIONS RETURN 1",
    "foreach": "FOREACH (i IN [1] | CREATE (:RoProbe {x: i}))",
    "load csv that writes": "LOAD CSV FROM 'file:///ro.csv' AS row CREATE (:RoProbe {x: row[0]})",
    "write procedure": "CALL db.createLabel('RoProbeLabel')",
    "schema procedure": "CALL db.createProperty('ro_probe_prop')",
    "index": "CREATE INDEX ro_probe IF NOT EXISTS FOR (n:RoProbe) ON (n.x)",
    "apoc create (absent or refused)": "CALL apoc.create.node(['RoProbe'], {x: 3}) YIELD node RETURN node",
    "apoc cypher (absent or refused)": "CALL apoc.cypher.doIt('CREATE (:RoProbe)', {}) YIELD value RETURN value",
    "create user": "CREATE USER ro_probe SET PASSWORD 'ro-probe-pw'",
    "change password": "ALTER CURRENT USER SET PASSWORD FROM 'x' TO 'yyyyyyyyy'",
    "stop database": "STOP DATABASE neo4j",
    "use system": "USE system CREATE USER ro_probe2 SET PASSWORD 'ro-probe-pw'",
    # Allowed by a READ transaction, refused from the plan:
    "load csv reads the server's files": "LOAD CSV FROM 'file:///ro.csv' AS row RETURN row",
    "load csv fetches URLs": "LOAD CSV FROM 'http://127.0.0.1:9/x.csv' AS row RETURN row",
    "terminate transactions": "TERMINATE TRANSACTIONS 'neo4j-transaction-1'",
    "show transactions": "SHOW TRANSACTIONS",
    "show users": "SHOW USERS",
    "show settings": "SHOW SETTINGS",
    "dbms procedure": "CALL dbms.listConfig() YIELD name RETURN name",
    "cache-clearing procedure": "CALL db.clearQueryCaches()",
}


def _state(graph: Graph) -> tuple[object, ...]:
    return (
        graph.read("MATCH (p:RoProbe) RETURN count(p) AS n")[0]["n"],
        graph.read("MATCH (n) WHERE n.ro_probe IS NOT NULL RETURN count(n) AS n")[0]["n"],
        sorted(r["label"] for r in graph.read("CALL db.labels() YIELD label RETURN label")),
        sorted(r["name"] for r in graph.read("SHOW INDEXES YIELD name RETURN name")),
    )


@pytest.fixture(scope="module")
def csv_in_import_dir() -> None:
    """The shared server's import folder gets a CSV, so LOAD CSV would succeed if it were let through."""
    from atlas_cli.local_neo4j import LocalNeo4jSettings

    folder = LocalNeo4jSettings().home / "import"
    if folder.exists():
        (folder / "ro.csv").write_text("1,2\n")


@pytest.mark.parametrize("case", list(WRITES))
def test_refused_and_nothing_changed(graph: Graph, case: str, csv_in_import_dir: None) -> None:
    before = _state(graph)
    with pytest.raises(InvalidInput) as info:
        run_read_only(graph, WRITES[case], {}, 10.0)
    assert "Traceback" not in str(info.value)
    assert _state(graph) == before, case


def test_reads_and_allowed_procedures_still_work(graph: Graph) -> None:
    assert run_read_only(graph, "MATCH (n) RETURN count(n) AS n", {}, 10.0)[0]["n"] >= 0
    assert run_read_only(graph, "CALL { MATCH (n) RETURN n LIMIT 1 } RETURN count(n) AS c", {}, 10.0)[0]["c"] <= 1
    assert isinstance(run_read_only(graph, "CALL db.labels() YIELD label RETURN label", {}, 10.0), list)
    assert isinstance(run_read_only(graph, "SHOW INDEXES YIELD name RETURN name", {}, 10.0), list)


def test_docs_offer_a_read_only_user() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    assert "CREATE USER analyst" in doc and "GRANT ROLE reader TO analyst" in doc and "default_to_read_only=true" in doc
