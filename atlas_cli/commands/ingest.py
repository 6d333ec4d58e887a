"""``atlas ingest``: not built yet."""

from __future__ import annotations

from queries.errors import AtlasError


def ingest() -> None:
    """Not built yet."""
    raise AtlasError("`atlas ingest` is not built yet")
