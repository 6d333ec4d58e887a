"""An asynchronous Neo4j client for the API: the async twin of :class:`queries.db.Graph` (read side).

Why: the API serves many concurrent requests on one event loop; the async driver keeps a connection pool
and never blocks the loop. Every statement runs with a server-side timeout and is routed as a read.
When Neo4j goes away, calls raise :class:`DatabaseUnavailable` quickly (bounded connection acquisition)
and the driver reconnects by itself once the server is back — the pool is never torn down.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, LiteralString

import neo4j
from neo4j import AsyncGraphDatabase, Query

from queries.driver import UNAVAILABLE, make_driver, map_error
from queries.errors import QueryTimeout
from queries.settings import Neo4jSettings

__all__ = ["AsyncGraph", "QueryTimeout"]  # QueryTimeout's home is queries.errors; re-exported for old imports

log = logging.getLogger(__name__)


class AsyncGraph:
    """A pooled async connection to one Neo4j database. ``await close()`` when done."""

    def __init__(self, settings: Neo4jSettings | None = None, *, max_pool_size: int = 50) -> None:
        self.settings = settings or Neo4jSettings()
        self.driver = make_driver(AsyncGraphDatabase.driver, self.settings, max_connection_pool_size=max_pool_size)

    async def close(self) -> None:
        await self.driver.close()

    async def verify(self) -> None:
        """Raise DatabaseUnavailable unless the server answers a query."""
        await self.read("RETURN 1 AS ok", timeout=self.settings.connect_timeout_s)

    async def read(
        self, text: LiteralString, params: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> list[dict[str, Any]]:
        """Run a read statement in a read-mode auto-commit transaction; records as dicts.

        Auto-commit needs one round trip (RUN+PULL) where a managed transaction needs two (BEGIN/RUN/PULL,
        then COMMIT); reads are idempotent, so one retry on a dropped connection (e.g. a stale pooled
        connection after a server restart) is safe.
        """
        query = Query(text, timeout=timeout if timeout is not None else self.settings.query_timeout_s)
        for attempt in (0, 1):
            try:
                async with self.driver.session(
                    database=self.settings.database, default_access_mode=neo4j.READ_ACCESS
                ) as session:
                    result = await session.run(query, dict(params or {}))
                    return [r.data() async for r in result]
            except UNAVAILABLE as exc:
                if attempt == 0:
                    log.info("retrying a read after a dropped connection: %s", exc)
                    continue
                raise map_error(exc, self.settings) from exc
            except Exception as exc:
                raise map_error(exc, self.settings, query.timeout) from exc
        raise AssertionError("unreachable")

    async def write(
        self, text: LiteralString, params: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> list[dict[str, Any]]:
        """Run a write statement (mutations such as labels)."""
        return await self._run(text, params, neo4j.RoutingControl.WRITE, timeout)

    async def _run(
        self,
        text: LiteralString,
        params: Mapping[str, Any] | None,
        routing: neo4j.RoutingControl,
        timeout: float | None,
    ) -> list[dict[str, Any]]:
        query = Query(text, timeout=timeout if timeout is not None else self.settings.query_timeout_s)
        try:
            records, _, _ = await self.driver.execute_query(
                query, parameters_=dict(params or {}), routing_=routing, database_=self.settings.database
            )
        except Exception as exc:
            raise map_error(exc, self.settings, query.timeout) from exc
        return [r.data() for r in records]
