"""Plain-HTTP routes (/export) answer errors with GraphQL's codes: one mapping, atlas_api.errors."""

from __future__ import annotations

import pytest

from atlas_api.errors import error_code, http_error
from queries import errors as e


@pytest.mark.parametrize(
    ("exc", "code", "status"),
    [
        (e.FeatureNotFound("a/1-res/2"), "FEATURE_NOT_FOUND", 404),
        (e.AtlasNotFound("nope"), "ATLAS_NOT_FOUND", 404),
        (e.QueryTimeout("the query ran past the server-side timeout of 1s"), "QUERY_TIMEOUT", 400),
        (e.InvalidInput("depth -1 is out of range"), "INVALID_INPUT", 400),
        (e.DatabaseUnavailable("Neo4j at bolt://x is unreachable"), "DATABASE_UNAVAILABLE", 503),
    ],
)
def test_http_errors_use_the_graphql_codes(exc: e.AtlasError, code: str, status: int) -> None:
    body, got = http_error(exc)
    assert (body["code"], got) == (code, status) and error_code(exc) == code
    assert body["error"] == str(exc)


def test_a_refused_statement_of_our_own_is_masked() -> None:
    body, status = http_error(e.QueryRejected("Neo.ClientError.Statement.SyntaxError", "Invalid input 'MATCHH'"))
    assert (body, status) == ({"error": "Unexpected error.", "code": "INTERNAL"}, 500)
