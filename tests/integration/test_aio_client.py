"""queries.aio.AsyncGraph: server-side timeouts become QueryTimeout, writes are refused in reads, a dead server is one clear error."""

from __future__ import annotations

import asyncio

import pytest

from queries.aio import AsyncGraph
from queries.errors import DatabaseUnavailable, QueryRejected, QueryTimeout
from queries.settings import Neo4jSettings


def test_timeout_readonly_and_unavailable(neo4j_settings: Neo4jSettings, graph: object) -> None:
    async def main() -> None:
        g = AsyncGraph(neo4j_settings)
        try:
            assert await g.read("RETURN 1 AS one") == [{"one": 1}]
            with pytest.raises(QueryTimeout, match="server-side timeout of 0.3s"):
                await g.read(
                    "UNWIND range(1, 2000000000) AS x WITH x WHERE x % 7 = 3 RETURN count(x) AS n", timeout=0.3
                )
            with pytest.raises(QueryRejected, match="Neo4j refused"):
                await g.read("CREATE (:ReadOnlyProbe) RETURN 1")
        finally:
            await g.close()
        dead = AsyncGraph(Neo4jSettings(uri="bolt://127.0.0.1:1", connect_timeout_s=1))
        try:
            with pytest.raises(DatabaseUnavailable, match="unreachable"):
                await dead.read("RETURN 1")
        finally:
            await dead.close()

    asyncio.run(main())
    assert graph.read("MATCH (n:ReadOnlyProbe) RETURN count(n) AS n")[0]["n"] == 0  # type: ignore[attr-defined]
