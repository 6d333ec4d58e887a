"""``atlas cypher``: run one read-only Cypher statement (or an analyst recipe) and print a table."""

from __future__ import annotations

import json
from typing import Any

import typer


def _parse_param(text: str) -> tuple[str, Any]:
    from queries.errors import InvalidInput

    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise InvalidInput(f"parameter {text!r} is not key=value (e.g. -p layer=12 or -p atlas=smollm2-demo)")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw  # a bare string


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, default=str)
    return "" if v is None else str(v)


def format_table(rows: list[dict[str, Any]], max_width: int = 60) -> str:
    if not rows:
        return "(no rows)"
    cols = list(rows[0].keys())
    cells = [[_cell(r.get(c))[:max_width] for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    line = lambda vals: " | ".join(v.ljust(w) for v, w in zip(vals, widths))  # noqa: E731
    out = [line(cols), "-+-".join("-" * w for w in widths), *(line(r) for r in cells)]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


def cypher(
    statement: str | None = typer.Argument(
        None, help='A read-only Cypher statement, e.g. "MATCH (f:Feature) RETURN f.uid LIMIT 5".'
    ),
    param: list[str] = typer.Option([], "--param", "-p", help="Parameter key=value (JSON values: -p layer=12)."),
    recipe: str | None = typer.Option(
        None, "--recipe", "-r", help="Run an analyst recipe instead (see --list-recipes)."
    ),
    list_recipes: bool = typer.Option(False, "--list-recipes", help="List the analyst recipes and exit."),
    output: str = typer.Option("table", "--format", "-f", help="table | json"),
    timeout: float = typer.Option(30.0, help="Server-side timeout in seconds."),
) -> None:
    """Run a read-only Cypher statement and print the result as a table. Writes are refused."""
    from queries.db import Graph
    from queries.errors import InvalidInput
    from queries.recipes import RECIPES, get_recipe

    if list_recipes:
        for r in RECIPES.values():
            shown = ", ".join([*r.required, *(f"{k}={v}" for k, v in r.defaults.items())])
            typer.echo(f"{r.name}: {r.question}\n    params: {shown}")
        return
    params: dict[str, Any] = dict(_parse_param(p) for p in param)
    text: str
    if recipe:
        rec = get_recipe(recipe)
        text, params = rec.statement, rec.params(params)
    elif statement:
        text = statement
    else:
        raise InvalidInput(
            'give a Cypher statement (atlas cypher "MATCH (f:Feature) RETURN f.uid LIMIT 5") or --recipe NAME'
        )
    if output not in ("table", "json"):
        raise InvalidInput(f"unknown format {output!r} (valid: table, json)")
    with Graph() as g:
        rows = run_read_only(g, text, params, timeout)
    typer.echo(json.dumps(rows, default=str, indent=1) if output == "json" else format_table(rows))


def run_read_only(graph: Any, text: str, params: dict[str, Any], timeout: float) -> list[dict[str, Any]]:
    """Run ``text`` in a READ transaction (the server itself refuses any write) after refusing, from its plan,
    what a READ transaction still allows but an analyst should not run (queries.readonly)."""
    from queries.errors import InvalidInput, QueryRejected
    from queries.readonly import check_analyst_statement

    try:
        check_analyst_statement(graph, text, params)
        return graph.read(text, params, timeout=timeout)  # user text (not a LiteralString), run read-only
    except QueryRejected as exc:
        code = exc.code
        if (
            "AccessMode" in code
            or "ForbiddenDueToTransactionType" in code
            or "WriteOnReadOnlyAccessDbException" in code
        ):
            raise InvalidInput(
                "atlas cypher runs read-only statements; this one writes (CREATE/MERGE/SET/DELETE/index changes are refused). "
                "Use the ingest or label commands to change the graph."
            ) from None
        raise InvalidInput(str(exc)) from None  # the user's own statement: their input to fix
