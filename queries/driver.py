"""What the sync (:mod:`queries.db`) and async (:mod:`queries.aio`) clients share: how a driver is built and
the one mapping from neo4j's exceptions to :class:`queries.errors.AtlasError` subclasses.

Callers above ``queries`` never import ``neo4j.exceptions``: a statement the server refuses is
:class:`~queries.errors.QueryRejected` (with the server's status ``code``), a server-side timeout is
:class:`~queries.errors.QueryTimeout`, everything about reaching the server is
:class:`~queries.errors.DatabaseUnavailable`. See docs/architecture.md ("Errors").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import neo4j
from neo4j.exceptions import (
    AuthError,
    ClientError,
    ConnectionAcquisitionTimeoutError,
    DriverError,
    Neo4jError,
    ServiceUnavailable,
    SessionExpired,
    TransientError,
)

from queries.errors import DatabaseBusy, DatabaseUnavailable, InvalidInput, QueryRejected, QueryTimeout
from queries.settings import Neo4jSettings

# A dropped or refused connection: the server is (temporarily) not there.
UNAVAILABLE: tuple[type[BaseException], ...] = (ServiceUnavailable, SessionExpired, ConnectionError, OSError)

D = TypeVar("D")


def unavailable_message(settings: Neo4jSettings, exc: BaseException | None = None) -> str:
    why = f": {exc}" if exc else ""
    return (
        f"Neo4j at {settings.uri} is unreachable{why} (start the project's server with `atlas db start`, "
        "or set NEO4J_URI/NEO4J_USERNAME/NEO4J_PASSWORD to a running one)"
    )


def acquisition_timeout_s(settings: Neo4jSettings) -> float:
    """How long a statement waits for a pooled connection before failing with DatabaseBusy."""
    return settings.connect_timeout_s * 2


def make_driver(factory: Callable[..., D], settings: Neo4jSettings, **extra: Any) -> D:
    """``GraphDatabase.driver`` or ``AsyncGraphDatabase.driver`` with the options both clients use."""
    try:
        return factory(
            settings.uri,
            auth=settings.auth,
            connection_timeout=settings.connect_timeout_s,
            # Bounded, so a dead server is one quick DatabaseUnavailable rather than a hang.
            connection_acquisition_timeout=acquisition_timeout_s(settings),
            max_transaction_retry_time=settings.connect_timeout_s,
            # Stale pooled connections after a server restart are detected before use.
            liveness_check_timeout=30.0,
            # "property/label does not exist" notices are expected (optional properties, empty databases): don't log them.
            notifications_disabled_classifications=[neo4j.NotificationDisabledClassification.UNRECOGNIZED],
            notifications_min_severity="OFF",
            **extra,
        )
    except (ValueError, DriverError) as exc:
        raise InvalidInput(
            f"NEO4J_URI {settings.uri!r} is not a valid Neo4j URI ({exc}); use e.g. bolt://127.0.0.1:7687"
        ) from exc


def map_error(exc: BaseException, settings: Neo4jSettings, timeout: float | None = None) -> BaseException:
    """The AtlasError for a driver failure, or ``exc`` itself when it is not a driver failure (a bug)."""
    if isinstance(exc, AuthError):
        return DatabaseUnavailable(
            f"Neo4j at {settings.uri} rejected user {settings.username!r} "
            "(check NEO4J_USERNAME/NEO4J_PASSWORD; the project's own server keeps its password in $ATLAS_NEO4J_HOME/password)"
        )
    if isinstance(exc, Neo4jError) and str(exc.code or "").startswith("Neo.ClientError"):
        code = str(exc.code)
        if "TransactionTimedOut" in code or "Transaction.Terminated" in code:
            return QueryTimeout(
                f"the query ran past the server-side timeout of {timeout}s (narrow it: smaller depth, "
                "fewer seeds, a higher minSimilarity, or a smaller page)"
            )
        return QueryRejected(code, exc.message or str(exc))
    if isinstance(exc, ClientError):  # a ClientError without a status code: still the statement's fault
        return QueryRejected("", str(exc))
    if isinstance(exc, ConnectionAcquisitionTimeoutError):
        # Every pooled connection stayed busy for the acquisition timeout: overload, not an outage (a dead server
        # fails the connect itself, well within that timeout). Saying "unreachable" here sent operators after
        # a server that was fine.
        return DatabaseBusy(
            f"Neo4j at {settings.uri} is busy: no pooled connection came free within "
            f"{acquisition_timeout_s(settings):g} s (the pool is exhausted by concurrent requests; retry, lower the "
            "concurrency, or raise ATLAS_API_NEO4J_POOL_SIZE / add read servers)",
            retry_after=1.0,
        )
    if isinstance(exc, TransientError):
        # A server that is shutting down answers with TransientError before the socket closes.
        return DatabaseUnavailable(
            f"Neo4j at {settings.uri} could not run the statement ({' '.join(str(exc).split())}); try again"
        )
    if isinstance(exc, (*UNAVAILABLE, DriverError)):
        return DatabaseUnavailable(unavailable_message(settings, exc))
    return exc
