import pytest

from queries.db import Graph
from queries.errors import DatabaseUnavailable
from queries.settings import Neo4jSettings


def test_schema_constraints_exist(graph: Graph) -> None:
    names = {r["name"] for r in graph.read("SHOW CONSTRAINTS YIELD name RETURN name")}
    assert {"feature_uid", "atlas_name", "sae_key"} <= names


def test_dead_database_gives_one_clear_error() -> None:
    settings = Neo4jSettings(uri="bolt://127.0.0.1:1", connect_timeout_s=1)
    with Graph(settings) as g, pytest.raises(DatabaseUnavailable, match="atlas db start"):
        g.read("RETURN 1")
