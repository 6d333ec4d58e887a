"""``atlas cypher``: not built yet."""

from __future__ import annotations

from queries.errors import AtlasError


def cypher() -> None:
    """Not built yet."""
    raise AtlasError("`atlas cypher` is not built yet")
