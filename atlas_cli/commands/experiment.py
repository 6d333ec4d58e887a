"""``atlas experiment ...``: reproductions of the paper's findings on an atlas (not built yet)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Reproduce the paper's findings on an atlas.", no_args_is_help=True)
