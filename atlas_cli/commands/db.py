"""``atlas db start|stop|status``: the project's own Neo4j server (see atlas_cli.local_neo4j)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Start, stop and inspect the project's own Neo4j server.", no_args_is_help=True)


@app.command()
def start() -> None:
    """Assemble Neo4j 5.26 from Maven Central (first time) and start it; waits until Bolt answers."""
    from atlas_cli import local_neo4j

    s = local_neo4j.LocalNeo4jSettings()
    st = local_neo4j.start(s)
    typer.echo(st.describe())
    where = s.password_file if s.password_file.exists() else "the legacy default, set before password files existed"
    typer.echo(
        f"connect with NEO4J_URI={st.bolt_uri} NEO4J_USERNAME=neo4j; the password is in {where} "
        "(atlas, the API and the tests read it from there when NEO4J_PASSWORD is unset)"
    )


@app.command()
def stop() -> None:
    """Stop the server cleanly."""
    from atlas_cli import local_neo4j

    s = local_neo4j.LocalNeo4jSettings()
    typer.echo("Neo4j stopped" if local_neo4j.stop(s) else "Neo4j was not running")


@app.command()
def status() -> None:
    """Say whether the server runs, and where. Exit 1 when it does not."""
    from atlas_cli import local_neo4j

    st = local_neo4j.status(local_neo4j.LocalNeo4jSettings())
    typer.echo(st.describe())
    if not st.running:
        raise typer.Exit(1)


@app.command("dump")
def dump_cmd(
    to_dir: Path = typer.Argument(..., help="Folder to write neo4j.dump (and atlas-dump.json) into."),
    database: str = typer.Option("neo4j", help="Database to dump."),
) -> None:
    """Dump the (stopped) local server's database with neo4j-admin, e.g. to load read servers from it."""
    from atlas_cli import local_neo4j

    path = local_neo4j.dump(local_neo4j.LocalNeo4jSettings(), to_dir, database)
    typer.echo(
        f"dumped {database!r} to {path} ({path.stat().st_size / 1e6:.1f} MB); load it elsewhere with `atlas db load {to_dir}`"
    )


@app.command("load")
def load_cmd(
    from_dir: Path = typer.Argument(..., help="Folder holding neo4j.dump from `atlas db dump`."),
    database: str = typer.Option("neo4j", help="Database to replace."),
) -> None:
    """Replace the (stopped) local server's database with a dump (refuses one from another Neo4j major version)."""
    from atlas_cli import local_neo4j

    local_neo4j.load(local_neo4j.LocalNeo4jSettings(), from_dir, database)
    typer.echo(f"loaded {from_dir / (database + '.dump')}; start the server with `atlas db start`")


@app.command()
def backup(
    path: Path = typer.Argument(
        ..., help="Folder to write the backup into (neo4j.dump + atlas-dump.json), e.g. backups/2026-01-31."
    ),
) -> None:
    """Back up the database with neo4j-admin: the server is stopped for the dump and started again."""
    from atlas_cli import local_neo4j

    dump = local_neo4j.backup(local_neo4j.LocalNeo4jSettings(), path)
    typer.echo(
        f"backup written to {dump} ({dump.stat().st_size / 1e6:.1f} MB); restore it with `atlas db restore {path}`"
    )


@app.command()
def restore(
    path: Path = typer.Argument(..., help="A folder written by `atlas db backup` (or `atlas db dump`)."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Replace the database with a backup: the server is stopped, loaded and started again."""
    from atlas_cli import local_neo4j

    s = local_neo4j.LocalNeo4jSettings()
    if not yes:
        typer.confirm(f"replace the whole database of the server at {s.home} with the backup in {path}?", abort=True)
    local_neo4j.restore(s, path)
    typer.echo(f"database restored from {path}")


@app.command()
def drop(
    atlas: str = typer.Argument(..., help="Name of the atlas to delete."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    keep_steering_runs: bool = typer.Option(
        False, "--keep-steering-runs", help="Keep the atlas's SteeringRun history."
    ),
) -> None:
    """Delete an atlas (features, edges, SAEs, runs) from the configured Neo4j, in batches."""
    from queries.atlases import atlas_info, known_atlases
    from queries.db import Graph
    from queries.errors import AtlasNotFound
    from queries.ids import check_atlas_name
    from queries.maintenance import drop_atlas
    from queries.settings import Neo4jSettings

    check_atlas_name(atlas)
    with Graph(Neo4jSettings()) as graph:
        if atlas_info(graph, atlas) is None:
            raise AtlasNotFound(atlas, known_atlases(graph))
        if not yes:
            typer.confirm(f"delete atlas {atlas!r} and everything in it?", abort=True)
        n = drop_atlas(graph, atlas, keep_steering_runs=keep_steering_runs)
    typer.echo(f"deleted atlas {atlas!r} ({n} nodes)")
