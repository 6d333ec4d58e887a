"""``atlas``: the one command. Subcommands live in ``atlas_cli.commands``; heavy imports stay inside handlers.

Expected failures (:class:`queries.errors.AtlasError`) print one line and exit 1; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import logging
import sys

import typer

from atlas_cli.commands import (
    cypher,
    db,
    demo,
    experiment,
    export,
    graphs,
    ingest,
    keys,
    labels,
    plot,
    serve,
    steer,
    steer_worker,
    steerability,
    train,
)
from queries.errors import AtlasError

app = typer.Typer(
    name="atlas",
    help="Feature Atlas: map how SAE features flow across layers, query the map, steer the model with it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_state = {"debug": False}


@app.callback()
def _main(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details."),
) -> None:
    _state["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else (logging.INFO if verbose else logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


app.add_typer(db.app, name="db")
app.add_typer(experiment.app, name="experiment")
app.add_typer(labels.app, name="labels")
app.add_typer(graphs.app, name="graphs")
app.add_typer(keys.app, name="keys")
app.add_typer(plot.app, name="plot")
app.command("ingest")(ingest.ingest)
app.command("serve")(serve.serve)
app.command("cypher")(cypher.cypher)
app.command("steer")(steer.steer)
app.command("steerability")(steerability.steerability)
app.command("steer-worker")(steer_worker.steer_worker)
app.command("train")(train.train)
app.command("demo")(demo.demo)
app.command("export")(export.export)
app.command("import")(export.import_)


def run() -> None:
    """Console entry point: turn expected errors into one clear line and exit code 1."""
    try:
        app(standalone_mode=False)
    except AtlasError as exc:
        if _state["debug"]:
            raise
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201 - the CLI's one error line
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)  # noqa: T201 - the CLI's one error line
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(1)
        raise


if __name__ == "__main__":
    run()
