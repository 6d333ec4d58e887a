"""A small synchronous Neo4j client used by ingest, steering, the CLI and tests.

Why a wrapper: every statement must run with a server-side timeout, reads must be routed as reads,
and driver failures must surface as one clear :class:`DatabaseUnavailable` line instead of a
traceback. Statements themselves live in the other ``queries`` modules; this one only runs them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, LiteralString

import neo4j
from neo4j import GraphDatabase, Query
from neo4j.exceptions import AuthError, ClientError, DriverError, Neo4jError, ServiceUnavailable, SessionExpired

from queries.errors import DatabaseUnavailable, InvalidInput
from queries.settings import Neo4jSettings

log = logging.getLogger(__name__)

_UNAVAILABLE = (ServiceUnavailable, SessionExpired, ConnectionError, OSError)


def unavailable_message(settings: Neo4jSettings, exc: BaseException | None = None) -> str:
    why = f": {exc}" if exc else ""
    return (
        f"Neo4j at {settings.uri} is unreachable{why} "
        "(start the project's server with `atlas db start`, or set NEO4J_URI/NEO4J_USERNAME/NEO4J_PASSWORD to a running one)"
    )


class Graph:
    """A connection to one Neo4j database. Use as a context manager or call :meth:`close`."""

    def __init__(self, settings: Neo4jSettings | None = None) -> None:
        self.settings = settings or Neo4jSettings()
        try:
            self.driver = GraphDatabase.driver(
                self.settings.uri,
                auth=(self.settings.username, self.settings.password),
                connection_timeout=self.settings.connect_timeout_s,
                max_transaction_retry_time=self.settings.connect_timeout_s,
                # "property/label does not exist" notices are expected (optional properties, empty databases): don't log them.
                notifications_disabled_classifications=[neo4j.NotificationDisabledClassification.UNRECOGNIZED],
            )
        except (ValueError, DriverError) as exc:
            raise InvalidInput(f"NEO4J_URI {self.settings.uri!r} is not a valid Neo4j URI ({exc}); use e.g. bolt://127.0.0.1:7687") from exc

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> "Graph":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.driver.close()

    def verify(self) -> None:
        """Raise DatabaseUnavailable unless the server answers and the credentials work."""
        try:
            self.driver.verify_connectivity()
        except AuthError as exc:
            raise DatabaseUnavailable(
                f"Neo4j at {self.settings.uri} rejected user {self.settings.username!r} "
                "(check NEO4J_USERNAME/NEO4J_PASSWORD; the project's own server uses neo4j/feature-atlas)"
            ) from exc
        except (*_UNAVAILABLE, DriverError) as exc:
            raise DatabaseUnavailable(unavailable_message(self.settings, exc)) from exc

    # -- running statements --------------------------------------------------------------------
    def _query(self, text: LiteralString, timeout: float | None) -> Query:
        return Query(text, timeout=timeout if timeout is not None else self.settings.query_timeout_s)

    def read(self, text: LiteralString, params: Mapping[str, Any] | None = None, *, timeout: float | None = None) -> list[dict[str, Any]]:
        """Run a read statement (routed to readers) and return its records as dicts."""
        return self._run(text, params, neo4j.RoutingControl.READ, timeout)

    def write(self, text: LiteralString, params: Mapping[str, Any] | None = None, *, timeout: float | None = None) -> list[dict[str, Any]]:
        """Run a write statement in its own auto-retried transaction."""
        return self._run(text, params, neo4j.RoutingControl.WRITE, timeout)

    def _run(self, text: LiteralString, params: Mapping[str, Any] | None, routing: neo4j.RoutingControl, timeout: float | None) -> list[dict[str, Any]]:
        try:
            records, _, _ = self.driver.execute_query(
                self._query(text, timeout),
                parameters_=dict(params or {}),
                routing_=routing,
                database_=self.settings.database,
            )
        except AuthError as exc:
            raise DatabaseUnavailable(f"Neo4j at {self.settings.uri} rejected the credentials (check NEO4J_USERNAME/NEO4J_PASSWORD)") from exc
        except _UNAVAILABLE as exc:
            raise DatabaseUnavailable(unavailable_message(self.settings, exc)) from exc
        except DriverError as exc:
            raise DatabaseUnavailable(unavailable_message(self.settings, exc)) from exc
        return [r.data() for r in records]

    def write_batches(self, text: LiteralString, rows: Iterable[Mapping[str, Any]], *, batch_size: int = 10_000, timeout: float | None = None) -> int:
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


def is_client_error(exc: BaseException) -> bool:
    """True for errors caused by the statement (syntax, constraint), not by the server's health."""
    return isinstance(exc, ClientError) or (isinstance(exc, Neo4jError) and str(getattr(exc, "code", "")).startswith("Neo.ClientError"))
