"""Servers tests start for themselves, shared by every tier: a free loopback port, a private Neo4j (its own
home and port, for tests that stop or kill it: never the shared one), and the real API on uvicorn."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from queries.settings import Neo4jSettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def private_neo4j(home: Path, *, heap: str = "512m", pagecache: str = "256m", start: bool = True) -> Iterator[Any]:
    """A Neo4j of our own under ``home`` on a free port (``atlas_cli.local_neo4j`` settings), stopped on exit."""
    from atlas_cli import local_neo4j

    s = local_neo4j.LocalNeo4jSettings(home=home, bolt_port=free_port(), heap=heap, pagecache=pagecache)
    try:
        if start:
            local_neo4j.start(s)
        yield s
    finally:
        local_neo4j.stop(s)


@contextmanager
def running_api(settings: Any = None, neo4j: Neo4jSettings | None = None, **app_kw: Any) -> Iterator[str]:
    """The real API app on uvicorn in a background thread (127.0.0.1, a free port); yields its base URL."""
    import uvicorn

    from atlas_api.app import create_app
    from atlas_api.settings import ApiSettings

    port = free_port()
    settings = (settings or ApiSettings()).model_copy(update={"host": "127.0.0.1", "port": port})
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, neo4j, **app_kw), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def gql(
    base: str, query: str, variables: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    import httpx

    r = httpx.post(
        f"{base}/graphql", json={"query": query, "variables": variables or {}}, headers=headers or {}, timeout=30
    )
    return dict(r.json())
