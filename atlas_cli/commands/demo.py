"""``atlas demo``: not built yet."""

from __future__ import annotations

from queries.errors import AtlasError


def demo() -> None:
    """Not built yet."""
    raise AtlasError("`atlas demo` is not built yet")
