"""``atlas serve``: the GraphQL API on uvicorn (GraphiQL at /graphql) and the dashboard at /."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from atlas_api.settings import ApiSettings


def serve(
    host: str | None = typer.Option(None, help="Interface to bind (default ATLAS_API_HOST or 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default ATLAS_API_PORT or 8000)."),
    workers: int = typer.Option(1, min=1, help="uvicorn worker processes."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
    allow_open_mutations: bool = typer.Option(
        False,
        "--allow-open-mutations",
        help="Allow ATLAS_API_MUTATIONS=open on a non-loopback address (anyone who reaches the port may write and steer).",
    ),
) -> None:
    """Serve the GraphQL API: /graphql (GraphiQL in a browser), /healthz, /readyz, /export/lineage, and the dashboard at /.

    Configuration: ATLAS_API_* (keys and roles, CORS origins, limits; see docs/api.md) and NEO4J_*.
    Mutations need an API key with their role (`atlas keys create`) unless ATLAS_API_MUTATIONS=open.
    """
    import uvicorn

    from atlas_api.settings import ApiSettings

    settings = ApiSettings(**{k: v for k, v in {"host": host, "port": port}.items() if v is not None})  # type: ignore[arg-type]  # pydantic validates the types
    check_exposure(settings, allow_open_mutations)
    typer.echo(f"GraphQL API on http://{settings.host}:{settings.port}/graphql (GraphiQL in a browser)")
    from atlas_api.app import DASHBOARD_DIR

    if (DASHBOARD_DIR / "index.html").is_file():
        typer.echo(f"dashboard on http://{settings.host}:{settings.port}/")
    else:
        typer.echo("dashboard not built: bash deploy/install.sh (or cd dashboard && npm ci && npm run build)", err=True)
    if workers > 1:
        # Each worker builds its own app (and Neo4j pool) from the environment.
        uvicorn.run(
            "atlas_api.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=workers,
            log_level=log_level,
        )
        return
    from atlas_api.app import create_app

    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=log_level)


def check_exposure(settings: ApiSettings, allow_open_mutations: bool) -> None:
    """Refuse to serve open mutations beyond loopback unless asked explicitly; warn about unusable setups."""
    import ipaddress
    import logging

    from queries.errors import InvalidInput

    try:
        loopback = ipaddress.ip_address(settings.host).is_loopback
    except ValueError:
        loopback = settings.host == "localhost"
    if settings.mutations == "open" and not loopback and not allow_open_mutations:
        raise InvalidInput(
            f"refusing to bind {settings.host} with ATLAS_API_MUTATIONS=open: anyone who reaches the port could relabel "
            "features and run the model. Create keys (`atlas keys create NAME --role label`) and unset ATLAS_API_MUTATIONS, "
            "bind 127.0.0.1, or pass --allow-open-mutations if this network is trusted"
        )
    if settings.mutations == "keyed" and not settings.api_key:
        from atlas_api.keys import KeyStore

        if not KeyStore(settings.keys_file).active():
            logging.getLogger(__name__).warning(
                "no API keys in %s: every mutation will be refused (create one with `atlas keys create NAME --role label`)",
                settings.keys_file,
            )
