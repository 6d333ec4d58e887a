"""The expected-failure members of result unions (``Feature | FeatureNotFound | InvalidInput``), reused by steering.

:func:`error_result` turns a queries ``AtlasError`` into one of them.
"""

from __future__ import annotations

import strawberry

from queries import errors as qerrors


@strawberry.type(description="The feature does not exist in the graph.")
class FeatureNotFound:
    uid: str
    message: str


@strawberry.type(description="An argument is not acceptable; the message names the value, what is valid and the fix.")
class InvalidInput:
    message: str
    field: str | None = None


def error_result(exc: qerrors.AtlasError, field: str | None = None) -> FeatureNotFound | InvalidInput:
    """Map an expected failure onto its typed GraphQL result (anything else is re-raised by callers)."""
    if isinstance(exc, qerrors.FeatureNotFound):
        return FeatureNotFound(uid=exc.uid, message=str(exc))
    return InvalidInput(message=str(exc), field=field)
