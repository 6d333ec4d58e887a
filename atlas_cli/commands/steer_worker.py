"""``atlas steer-worker``: serve steering requests from the API replicas (steering/worker.py)."""

from __future__ import annotations

import typer


def steer_worker(
    host: str | None = typer.Option(None, help="Interface to bind (default ATLAS_STEER_WORKER_HOST or 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default ATLAS_STEER_WORKER_PORT or 8100)."),
    queue_size: int | None = typer.Option(
        None, help="Requests that may wait beyond the running one (default 8); more get SteerBusy."
    ),
    timeout_s: float | None = typer.Option(
        None, help="Per-request timeout in seconds, waiting included (default 120)."
    ),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Run the steering model in this process for API replicas configured with ATLAS_API_STEER_WORKER_URL.

    Configuration: ATLAS_STEER_WORKER_* (this command's options), ATLAS_STEER_* (model, device, manifests) and NEO4J_*.
    """
    import uvicorn

    from queries.db import Graph
    from queries.settings import Neo4jSettings
    from steering.service import Steerer, SteeringSettings
    from steering.worker import WorkerSettings, create_worker_app

    given = {"host": host, "port": port, "queue_size": queue_size, "timeout_s": timeout_s}
    settings = WorkerSettings(**{k: v for k, v in given.items() if v is not None})  # type: ignore[arg-type]  # pydantic validates the types
    steerer = Steerer(Graph(Neo4jSettings()), SteeringSettings())
    typer.echo(
        f"steering worker on http://{settings.host}:{settings.port}/steer (queue {settings.queue_size}, timeout {settings.timeout_s:g} s)"
    )
    uvicorn.run(create_worker_app(steerer, settings), host=settings.host, port=settings.port, log_level=log_level)
