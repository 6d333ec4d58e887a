"""``atlas train``: not built yet."""

from __future__ import annotations

from queries.errors import AtlasError


def train() -> None:
    """Not built yet."""
    raise AtlasError("`atlas train` is not built yet")
