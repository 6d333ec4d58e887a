"""``atlas serve``: not built yet."""

from __future__ import annotations

from queries.errors import AtlasError


def serve() -> None:
    """Not built yet."""
    raise AtlasError("`atlas serve` is not built yet")
