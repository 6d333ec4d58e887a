"""How a failure reaches a client: one code per error class, the same for GraphQL and the plain-HTTP routes.

An expected failure (``queries.errors.AtlasError``) keeps its message and gets ``extensions.code``
(FEATURE_NOT_FOUND, INVALID_INPUT, DATABASE_UNAVAILABLE, ...); anything else is logged with its traceback and
masked as "Unexpected error." (code INTERNAL). Refusals before a resolver runs (keys, rates, admission) carry
their HTTP status (401/403/429/503).
"""

from __future__ import annotations

import logging
from typing import Any

from graphql import ExecutionResult, GraphQLError
from strawberry.extensions import MaskErrors

from queries import errors as qerrors

log = logging.getLogger(__name__)

_HTTP_STATUS = {"UNAUTHENTICATED": 401, "FORBIDDEN": 403, "RATE_LIMITED": 429, "STEER_BUSY": 429, "OVERLOADED": 503}


def refusal(context: Any, exc: qerrors.AtlasError) -> ExecutionResult:
    """The answer to a request refused before it ran: ``exc`` as a typed error, its HTTP status on the response."""
    code = error_code(exc)
    ext: dict[str, Any] = {"code": code}
    response = getattr(context, "response", None)
    if isinstance(exc, qerrors.RetryLater):
        ext["retryAfter"] = exc.retry_after
        if response is not None:
            response.headers["retry-after"] = str(exc.retry_after)
    if response is not None and code in _HTTP_STATUS:
        response.status_code = _HTTP_STATUS[code]
    return ExecutionResult(data=None, errors=[GraphQLError(str(exc), extensions=ext)])


_CODES: list[tuple[type[Exception], str]] = [
    (qerrors.QueryRejected, "INTERNAL"),  # Neo4j refused one of our own statements: a bug, masked
    (qerrors.FeatureNotFound, "FEATURE_NOT_FOUND"),
    (qerrors.AtlasNotFound, "ATLAS_NOT_FOUND"),
    (qerrors.NotFound, "NOT_FOUND"),
    (qerrors.QueryTimeout, "QUERY_TIMEOUT"),
    (qerrors.InvalidInput, "INVALID_INPUT"),
    (qerrors.DatabaseBusy, "DATABASE_BUSY"),
    (qerrors.DatabaseUnavailable, "DATABASE_UNAVAILABLE"),
    (qerrors.Overloaded, "OVERLOADED"),
    (qerrors.ModelUnavailable, "MODEL_UNAVAILABLE"),
    (qerrors.Unauthenticated, "UNAUTHENTICATED"),
    (qerrors.Forbidden, "FORBIDDEN"),
    (qerrors.SteerBusy, "STEER_BUSY"),
    (qerrors.RateLimited, "RATE_LIMITED"),
    (qerrors.AtlasError, "ATLAS_ERROR"),
]


def error_code(exc: BaseException) -> str:
    for cls, code in _CODES:
        if isinstance(exc, cls):
            return code
    return "INTERNAL"


# Plain-HTTP routes: GraphQL's refusal statuses plus those a route answers itself (GraphQL answers 200 there).
_ROUTE_STATUS = {
    **_HTTP_STATUS,
    "FEATURE_NOT_FOUND": 404,
    "ATLAS_NOT_FOUND": 404,
    "NOT_FOUND": 404,
    "DATABASE_UNAVAILABLE": 503,
    "DATABASE_BUSY": 503,
    "MODEL_UNAVAILABLE": 503,
    "INTERNAL": 500,
}


def http_error(exc: BaseException) -> tuple[dict[str, str], int]:
    """The body and status of a plain-HTTP route's error: the same codes and masking as GraphQL's."""
    code = error_code(exc)
    if code == "INTERNAL":
        log.error("unexpected error in an HTTP route", exc_info=exc)
        return {"error": "Unexpected error.", "code": code}, 500
    return {"error": str(exc), "code": code}, _ROUTE_STATUS.get(code, 400)


def mask_errors(errors: list[GraphQLError]) -> list[GraphQLError]:
    """Keep expected failures (``AtlasError``, with ``extensions.code``) and GraphQL's own errors; log and mask the rest."""
    out: list[GraphQLError] = []
    for error in errors:
        orig = error.original_error
        if orig is None or isinstance(orig, GraphQLError):
            out.append(error)
        elif isinstance(orig, qerrors.AtlasError) and not isinstance(orig, qerrors.QueryRejected):
            out.append(
                GraphQLError(
                    str(orig),
                    error.nodes,
                    error.source,
                    error.positions,
                    error.path,
                    None,
                    extensions={
                        **(error.extensions or {}),
                        "code": error_code(orig),
                        **({"uid": orig.uid} if isinstance(orig, qerrors.FeatureNotFound) else {}),
                        **({"retryAfter": orig.retry_after} if isinstance(orig, qerrors.RetryLater) else {}),
                    },
                )
            )
        else:  # our own statement refused by Neo4j (QueryRejected) is a bug too, not the user's input
            log.error("unexpected error in %s", ".".join(map(str, error.path or [])), exc_info=orig)
            out.append(
                GraphQLError(
                    "Unexpected error.",
                    error.nodes,
                    error.source,
                    error.positions,
                    error.path,
                    None,
                    extensions={"code": "INTERNAL"},
                )
            )
    return out


class AtlasErrors(MaskErrors):
    """strawberry's masking extension with :func:`mask_errors` as its rule."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=lambda _: True)

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return mask_errors(errors)
