"""``atlas labels import DIR``: feature labels from Neuronpedia explanation exports; ``atlas labels pages``: feature pages."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Import feature labels from other tools.", no_args_is_help=True)


@app.command("import")
def import_(
    folder: Path = typer.Argument(
        ..., help="A folder of Neuronpedia exports ({model}/{source}/explanations/batch-N.jsonl.gz)."
    ),
    atlas: str | None = typer.Option(None, help="Only this atlas (default: every atlas whose SAEs the export names)."),
) -> None:
    """Read Neuronpedia explanation exports into feature labels, matched by model/layer/set/index."""
    from interop.neuronpedia import import_labels
    from queries.db import Graph

    with Graph() as g:
        r = import_labels(g, folder, atlas=atlas)
    typer.echo(r.summary())
    for src, n in sorted(r.by_source.items()):
        typer.echo(f"  {src}: {n}")


@app.command("embed")
def embed(
    atlas: str = typer.Argument(..., help="The atlas whose feature labels to embed."),
    force: bool = typer.Option(False, help="Re-embed every feature, not only those whose text changed."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
) -> None:
    """Embed feature labels and top contexts (all-MiniLM-L6-v2, offline) for search(mode: SEMANTIC)."""
    from interop.semantic import embed_atlas
    from queries.db import Graph

    with Graph() as g:
        r = embed_atlas(g, atlas, device=device, force=force)
    typer.echo(f"{atlas}: embedded {r.embedded} of {r.features} labelled features ({r.unchanged} unchanged)")


@app.command("pages")
def pages(
    path: Path = typer.Argument(..., help="A trained atlas folder (atlas train / atlas demo) or any atlas.toml."),
    corpus: Path | None = typer.Option(
        None, help="Text to compute the pages on (needed unless the folder has the metrics.json of atlas train)."
    ),
    tokens: int = typer.Option(16_384, help="Tokens of --corpus to use."),
    force: bool = typer.Option(False, help="Recompute even when feature_pages.jsonl files exist."),
) -> None:
    """Feature pages (density, quantile examples, logit lens) for an ingested atlas, stored on its Feature nodes."""
    import json

    from queries.db import Graph
    from queries.errors import InvalidInput
    from saes.manifest import load_manifest
    from training.feature_pages_publish import publish_corpus_pages, publish_trained_pages

    folder = path if path.is_dir() else path.parent
    manifest = load_manifest(folder / "atlas.toml" if path.is_dir() else path)
    metrics = folder / "metrics.json"
    with Graph() as g:
        if corpus is not None:
            t = publish_corpus_pages(manifest, g, corpus, tokens=tokens, force=force)
        elif metrics.is_file():
            t = publish_trained_pages(folder, json.loads(metrics.read_text()), manifest, g, force=force)
        else:
            raise InvalidInput(
                f"{folder} has no metrics.json of atlas train: give --corpus PATH (text the SAEs were not trained on)"
            )
    typer.echo(json.dumps(t))
