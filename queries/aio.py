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
from neo4j.exceptions import AuthError, ClientError, DriverError, ServiceUnavailable, SessionExpired

from queries.db import unavailable_message
from queries.errors import DatabaseUnavailable, InvalidInput
from queries.settings import Neo4jSettings

log = logging.getLogger(__name__)

_UNAVAILABLE = (ServiceUnavailable, SessionExpired, ConnectionError, OSError)


class QueryTimeout(InvalidInput):
    """A statement ran past its server-side timeout (usually a too-broad query)."""


class AsyncGraph:
    """A pooled async connection to one Neo4j database. ``await close()`` when done."""

    def __init__(self, settings: Neo4jSettings | None = None, *, max_pool_size: int = 50) -> None:
        self.settings = settings or Neo4jSettings()
        try:
            self.driver = AsyncGraphDatabase.driver(
                self.settings.uri,
                auth=(self.settings.username, self.settings.password),
                connection_timeout=self.settings.connect_timeout_s,
                connection_acquisition_timeout=self.settings.connect_timeout_s * 2,
                max_transaction_retry_time=self.settings.connect_timeout_s,
                # "property/label does not exist" notices are expected (optional properties, empty databases): don't log them.
                notifications_disabled_classifications=[neo4j.NotificationDisabledClassification.UNRECOGNIZED],
                max_connection_pool_size=max_pool_size,
                # Stale pooled connections after a server restart are detected before use.
                liveness_check_timeout=30.0,
                # Schema notifications (e.g. an optional property no feature has yet) are noise for a server.
                notifications_min_severity="OFF",
            )
        except (ValueError, DriverError) as exc:
            raise InvalidInput(f"NEO4J_URI {self.settings.uri!r} is not a valid Neo4j URI ({exc}); use e.g. bolt://127.0.0.1:7687") from exc

    async def close(self) -> None:
        await self.driver.close()

    async def verify(self) -> None:
        """Raise DatabaseUnavailable unless the server answers a query."""
        await self.read("RETURN 1 AS ok", timeout=self.settings.connect_timeout_s)

    async def read(self, text: LiteralString, params: Mapping[str, Any] | None = None, *, timeout: float | None = None) -> list[dict[str, Any]]:
        """Run a read statement in a read-mode auto-commit transaction; records as dicts.

        Auto-commit needs one round trip (RUN+PULL) where a managed transaction needs two (BEGIN/RUN/PULL,
        then COMMIT); reads are idempotent, so one retry on a dropped connection (e.g. a stale pooled
        connection after a server restart) is safe.
        """
        query = Query(text, timeout=timeout if timeout is not None else self.settings.query_timeout_s)
        for attempt in (0, 1):
            try:
                async with self.driver.session(database=self.settings.database, default_access_mode=neo4j.READ_ACCESS) as session:
                    result = await session.run(query, dict(params or {}))
                    return [r.data() async for r in result]
            except (SessionExpired, ServiceUnavailable, ConnectionError, OSError) as exc:
                if attempt == 0:
                    log.info("retrying a read after a dropped connection: %s", exc)
                    continue
                raise DatabaseUnavailable(unavailable_message(self.settings, exc)) from exc
            except Exception as exc:  # noqa: BLE001 - mapped below, or re-raised unchanged
                raise self._map(exc, query) from exc
        raise AssertionError("unreachable")

    async def write(self, text: LiteralString, params: Mapping[str, Any] | None = None, *, timeout: float | None = None) -> list[dict[str, Any]]:
        """Run a write statement (mutations such as labels)."""
        return await self._run(text, params, neo4j.RoutingControl.WRITE, timeout)

    async def _run(self, text: LiteralString, params: Mapping[str, Any] | None, routing: neo4j.RoutingControl, timeout: float | None) -> list[dict[str, Any]]:
        query = Query(text, timeout=timeout if timeout is not None else self.settings.query_timeout_s)
        try:
            records, _, _ = await self.driver.execute_query(query, parameters_=dict(params or {}), routing_=routing, database_=self.settings.database)
        except Exception as exc:  # noqa: BLE001 - mapped below, or re-raised unchanged
            raise self._map(exc, query) from exc
        return [r.data() for r in records]

    def _map(self, exc: Exception, query: Query) -> Exception:
        """The AtlasError for a driver failure, or the failure itself when it is not one we expect."""
        if isinstance(exc, AuthError):
            return DatabaseUnavailable(f"Neo4j at {self.settings.uri} rejected the credentials (check NEO4J_USERNAME/NEO4J_PASSWORD)")
        if isinstance(exc, ClientError):
            code = str(getattr(exc, "code", "") or "")
            if "TransactionTimedOut" in code or "Transaction.Terminated" in code:
                return QueryTimeout(
                    f"the query ran past the server-side timeout of {query.timeout}s (narrow it: smaller depth, "
                    "fewer seeds, a higher minSimilarity, or a smaller page)"
                )
            return exc
        if isinstance(exc, (*_UNAVAILABLE, DriverError)):
            return DatabaseUnavailable(unavailable_message(self.settings, exc))
        return exc
