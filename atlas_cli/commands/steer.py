"""``atlas steer``: not built yet."""

from __future__ import annotations

from queries.errors import AtlasError


def steer() -> None:
    """Not built yet."""
    raise AtlasError("`atlas steer` is not built yet")
