"""``atlas serve``: the GraphQL API on uvicorn (GraphiQL at /graphql)."""

from __future__ import annotations

from typing import Optional

import typer


def serve(
    host: Optional[str] = typer.Option(None, help="Interface to bind (default ATLAS_API_HOST or 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, help="Port (default ATLAS_API_PORT or 8000)."),
    workers: int = typer.Option(1, min=1, help="uvicorn worker processes."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Serve the GraphQL API: /graphql (GraphiQL in a browser), /healthz, /readyz, /export/lineage.

    Configuration: ATLAS_API_* (CORS origins, API key for mutations, limits; see docs/api.md) and NEO4J_*.
    """
    import uvicorn

    from atlas_api.settings import ApiSettings

    settings = ApiSettings(**{k: v for k, v in {"host": host, "port": port}.items() if v is not None})  # type: ignore[arg-type]  # pydantic validates the types
    typer.echo(f"GraphQL API on http://{settings.host}:{settings.port}/graphql (GraphiQL in a browser)")
    if workers > 1:
        # Each worker builds its own app (and Neo4j pool) from the environment.
        uvicorn.run("atlas_api.app:create_app", factory=True, host=settings.host, port=settings.port, workers=workers, log_level=log_level)
        return
    from atlas_api.app import create_app

    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=log_level)
