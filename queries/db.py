"""A small synchronous Neo4j client used by ingest, steering, the CLI and tests.

Why a wrapper: every statement must run with a server-side timeout, reads must be routed as reads,
and driver failures must surface as one clear AtlasError line instead of a traceback (the mapping and
the driver options are shared with the async client: :mod:`queries.driver`). Statements themselves live in the other ``queries`` modules; this one only runs them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, LiteralString

import neo4j
from neo4j import GraphDatabase, Query

from queries.driver import make_driver, map_error
from queries.settings import Neo4jSettings

log = logging.getLogger(__name__)


class Graph:
    """A connection to one Neo4j database. Use as a context manager or call :meth:`close`."""

    def __init__(self, settings: Neo4jSettings | None = None) -> None:
        self.settings = settings or Neo4jSettings()
        self.driver = make_driver(GraphDatabase.driver, self.settings)

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> Graph:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.driver.close()

    def verify(self) -> None:
        """Raise DatabaseUnavailable unless the server answers and the credentials work."""
        try:
            self.driver.verify_connectivity()
        except Exception as exc:
            raise map_error(exc, self.settings) from exc

    # -- running statements --------------------------------------------------------------------
    def _query(self, text: LiteralString, timeout: float | None) -> Query:
        return Query(text, timeout=timeout if timeout is not None else self.settings.query_timeout_s)

    def read(
        self, text: LiteralString, params: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> list[dict[str, Any]]:
        """Run a read statement (routed to readers) and return its records as dicts."""
        return self._run(text, params, neo4j.RoutingControl.READ, timeout)

    def write(
        self, text: LiteralString, params: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> list[dict[str, Any]]:
        """Run a write statement in its own auto-retried transaction."""
        return self._run(text, params, neo4j.RoutingControl.WRITE, timeout)

    def _run(
        self,
        text: LiteralString,
        params: Mapping[str, Any] | None,
        routing: neo4j.RoutingControl,
        timeout: float | None,
    ) -> list[dict[str, Any]]:
        query = self._query(text, timeout)
        try:
            records, _, _ = self.driver.execute_query(
                query, parameters_=dict(params or {}), routing_=routing, database_=self.settings.database
            )
        except Exception as exc:
            raise map_error(exc, self.settings, query.timeout) from exc
        return [r.data() for r in records]

    def plan(self, text: LiteralString, params: Mapping[str, Any] | None = None) -> list[tuple[str, str]]:
        """``EXPLAIN`` a statement (nothing runs): its operators as (type without the ``@db`` suffix, details)."""
        query = self._query("EXPLAIN " + text, None)  # still the caller's text, prefixed
        try:
            _, summary, _ = self.driver.execute_query(
                query,
                parameters_=dict(params or {}),
                routing_=neo4j.RoutingControl.READ,
                database_=self.settings.database,
            )
        except Exception as exc:
            raise map_error(exc, self.settings, query.timeout) from exc
        out: list[tuple[str, str]] = []
        stack = [summary.plan] if summary.plan else []
        while stack:
            node = stack.pop()
            out.append(
                (str(node.get("operatorType", "")).split("@")[0], str((node.get("args") or {}).get("Details") or ""))
            )
            stack.extend(node.get("children") or [])
        return out

    def write_batches(
        self,
        text: LiteralString,
        rows: Iterable[Mapping[str, Any]],
        *,
        batch_size: int = 10_000,
        timeout: float | None = None,
    ) -> int:
        """Run an ``UNWIND $rows AS row ...`` statement over ``rows`` in batches; returns rows written."""
        batch: list[Mapping[str, Any]] = []
        written = 0
        for row in rows:
            batch.append(row)
            if len(batch) >= batch_size:
                self.write(text, {"rows": batch}, timeout=timeout)
                written += len(batch)
                batch = []
        if batch:
            self.write(text, {"rows": batch}, timeout=timeout)
            written += len(batch)
        return written
