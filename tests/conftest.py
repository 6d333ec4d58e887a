"""Markers by directory: tests/integration → neo4j, tests/slow → slow (+ neo4j where they use it), tests/gpu → gpu."""

from __future__ import annotations

from pathlib import Path

import pytest

_MARKERS = {"integration": "neo4j", "slow": "slow", "gpu": "gpu"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(__file__).parent
    for item in items:
        try:
            part = Path(str(item.fspath)).relative_to(root).parts[0]
        except ValueError:
            continue
        marker = _MARKERS.get(part)
        if marker:
            item.add_marker(getattr(pytest.mark, marker))
