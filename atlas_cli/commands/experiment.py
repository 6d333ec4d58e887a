"""``atlas experiment coactivation|deactivation|steering|steering-bench|rescale|thresholds|transitions``: the paper's
findings reproduced on an atlas.

Each command writes ``{name}.md``, ``{name}.json`` and PNG figures into ``--out``; each report carries the
controls section (every stored median score between its null and its seed ceiling, read from Neo4j). Heavy imports (torch,
transformers, the experiments package) happen inside the handlers so ``atlas --help`` stays fast.
"""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path
from typing import Any

import typer

from queries.domain import MODULE_CUT, RESIDUAL_CUT
from queries.errors import InvalidInput

app = typer.Typer(
    help="Reproduce the paper's findings on an atlas (reports with figures and JSON).", no_args_is_help=True
)
log = logging.getLogger(__name__)

_ATLAS = typer.Option(..., "--atlas", help="Atlas name, e.g. smollm2-demo.")
_OUT = typer.Option(Path("reports"), "--out", help="Folder for the report (Markdown, PNGs, JSON).")
_MANIFEST = typer.Option(
    None, "--manifest", help="The atlas's atlas.toml (default: where `atlas demo`/`atlas train` wrote it)."
)
_MODEL = typer.Option(None, "--model", help="Override the model named in the manifest (HF id or local path).")
_CORPUS = typer.Option(
    None, "--corpus", help="Text to sample from (file or folder); default: the held-out split of the default corpus."
)
_DEVICE = typer.Option("auto", "--device", help="cpu | cuda | auto (cuda when available).")
_SEED = typer.Option(0, "--seed", help="Seed of every random choice (texts, tokens, targets, sampling).")
_THREADS = typer.Option(
    1,
    "--threads",
    help="CPU threads for torch (0 = torch's default). 1 is the default because small batched ops with 2+ threads run ~10x slower when other processes share the cores.",
)


def _threads(n: int) -> dict[str, Any]:
    import torch

    if n > 0:
        torch.set_num_threads(n)
    return {"torch_threads": torch.get_num_threads()}


def _device(value: str) -> str:
    if value != "auto":
        return value
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _meta(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"command": "atlas " + " ".join(shlex.quote(a) for a in sys.argv[1:]), **(extra or {})}


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise InvalidInput(f"{what} {text!r} is not valid (use comma-separated numbers, e.g. '4,8')") from None
    if not vals:
        raise InvalidInput(f"{what} is empty (use comma-separated numbers, e.g. '4,8')")
    return vals


def _context(
    atlas: str, manifest: str | None, model: str | None, device: str, threads: int
) -> tuple[Any, dict[str, Any]]:
    """The atlas's context (SAEs + model) and the thread settings recorded in the report."""
    from experiments.context import load_context

    tmeta = _threads(threads)
    return load_context(atlas, manifest=manifest, model=model, device=_device(device)), tmeta


def _done(report: Any, out: Path, atlas: str | None = None) -> None:
    """Add the controls section (when the atlas is known) and write the report."""
    if atlas:
        _add_controls(report, atlas)
    typer.echo(f"report: {report.write(out)}")


def _add_controls(report: Any, atlas: str) -> None:
    from experiments.controls import controls_section
    from queries.db import Graph
    from queries.errors import DatabaseUnavailable

    try:
        with Graph() as graph:
            graph.verify()
            data, md = controls_section(graph, atlas)
    except DatabaseUnavailable:
        data, md = controls_section(None, atlas)
    report.data["controls"] = data
    report.add(md)


@app.command("coactivation")
def coactivation(
    atlas: str = _ATLAS,
    out: Path = _OUT,
    manifest: str | None = _MANIFEST,
    model: str | None = _MODEL,
    corpus: str | None = _CORPUS,
    texts: int = typer.Option(250, help="Held-out texts (the paper: 250 per dataset)."),
    tokens_per_text: int = typer.Option(5, help="Random non-first tokens per text (the paper: 5)."),
    window: int = typer.Option(128, help="Tokens of context per text."),
    seed: int = _SEED,
    device: str = _DEVICE,
    threads: int = _THREADS,
) -> None:
    """Groups of active residual features by active predecessors, shares by layer, Mann–Whitney, matched vs random pairs (§4.1)."""
    from experiments import coactivation_report as exp
    from experiments.coactivation import CoactivationSettings
    from experiments.texts import held_out_windows

    ctx, tmeta = _context(atlas, manifest, model, device, threads)
    windows = held_out_windows(ctx.model.tokenizer, texts, window, seed=seed, corpus=corpus)
    settings = CoactivationSettings(n_texts=len(windows), tokens_per_text=tokens_per_text, window=window, seed=seed)
    report = exp.run(ctx, windows, settings, meta=_meta({"corpus": corpus or "default (held-out split)", **tmeta}))
    _done(report, out, atlas)


@app.command("deactivation")
def deactivation(
    atlas: str = typer.Option(None, "--atlas", help="Atlas name, e.g. smollm2-demo (not needed with --from-records)."),
    out: Path = _OUT,
    manifest: str | None = _MANIFEST,
    model: str | None = _MODEL,
    corpus: str | None = _CORPUS,
    texts: int = typer.Option(12, help="Held-out texts (the paper: 35; 12 fits 20 min on a 2-core CPU)."),
    tokens_per_text: int = typer.Option(5, help="Random non-first tokens per text (the paper: 5)."),
    window: int = typer.Option(64, help="Tokens of context per text."),
    layers: str | None = typer.Option(
        None, help="Target layers, e.g. '6,12,18' (default: 3 at the paper's relative depths)."
    ),
    max_targets: int = typer.Option(25, help="Active targets per (layer, token) (the paper: 25)."),
    pearson_tokens: int = typer.Option(
        100_000,
        help="Calibration tokens for Pearson matching (the paper: 100K; position 0 of each window is left out).",
    ),
    pearson_window: int = typer.Option(
        128,
        help="Tokens per calibration window (evaluation windows are cut from the same held-out windows, so the two never overlap).",
    ),
    r: float = typer.Option(0.0, help="Rescaling factor of the removed predecessors (0 = remove)."),
    seed: int = _SEED,
    device: str = _DEVICE,
    threads: int = _THREADS,
    from_records: Path | None = typer.Option(
        None,
        "--from-records",
        help="Re-aggregate an earlier deactivation.json's per-target "
        "records with this version's statistics (no model run) and write the report.",
    ),
) -> None:
    """Remove matched predecessors at one token and measure whether the target switches off (§4.2, Table 1)."""
    from experiments import deactivation_report as exp
    from experiments.deactivation import DeactivationSettings
    from experiments.texts import held_out_windows

    if from_records is not None:
        if not from_records.is_file():
            raise InvalidInput(
                f"--from-records {str(from_records)!r} is not a file (give a deactivation.json written by this command)"
            )
        _done(exp.rebuild(from_records, note=f"`{_meta()['command']}`"), out)
        return
    if not atlas:
        raise InvalidInput("--atlas is required (e.g. --atlas smollm2-demo), unless --from-records is given")
    ctx, tmeta = _context(atlas, manifest, model, device, threads)
    layer_list = tuple(int(x) for x in _floats(layers, "--layers")) if layers else None
    if pearson_tokens < 1000:
        raise InvalidInput(
            f"--pearson-tokens {pearson_tokens} is too few to correlate activations (use ≥ 1000; the paper: 100000)"
        )
    calib_window = max(window, pearson_window)
    n_calib = -(-pearson_tokens // (calib_window - 1))
    all_windows = held_out_windows(ctx.model.tokenizer, texts + n_calib, calib_window, seed=seed, corpus=corpus)
    if len(all_windows) <= texts:
        raise InvalidInput(
            f"the corpus gave only {len(all_windows)} texts of {calib_window} tokens; need more than --texts {texts} (lower --texts or --window)"
        )
    windows, calib = [w[:window] for w in all_windows[:texts]], all_windows[texts:]
    if len(calib) < n_calib:
        log.warning(
            "held-out text gave %d calibration tokens for Pearson matching (asked for %d)",
            len(calib) * (calib_window - 1),
            pearson_tokens,
        )
    settings = DeactivationSettings(
        n_texts=len(windows),
        tokens_per_text=tokens_per_text,
        window=window,
        layers=layer_list,
        max_targets=max_targets,
        r=r,
        pearson_tokens=len(calib) * (calib_window - 1),
        pearson_window=calib_window,
        seed=seed,
    )
    report = exp.run(
        ctx, windows, calib, settings, meta=_meta({"corpus": corpus or "default (held-out split)", **tmeta})
    )
    _done(report, out, atlas)


@app.command("steering")
def steering(
    atlas: str = _ATLAS,
    out: Path = _OUT,
    theme: str = typer.Option("love and marriage", help="The theme, as text."),
    seeds: str | None = typer.Option(
        None, help="Seed features, comma-separated (uids or 12/res/77); default: chosen from labels or activations."
    ),
    n_seeds: int = typer.Option(3, help="Seeds to choose when --seeds is not given."),
    strengths: str = typer.Option(
        "4,8", help="Additive strengths s for promotion (units: the feature's typical activation)."
    ),
    factors: str = typer.Option("0,-2", help="Rescaling factors r for suppression."),
    schedules: str = typer.Option("constant,exponential,linear", help="Schedules of the cumulative strategy."),
    directions: str = typer.Option("promote,suppress", help="promote and/or suppress."),
    max_layers: int = typer.Option(6, help="Layers l swept (evenly spaced over the graphs' span)."),
    generations: int = typer.Option(4, help="Seeded generations per setting."),
    max_new_tokens: int = typer.Option(36, help="Tokens per generation (the paper: 36)."),
    promote_prompt: str = typer.Option("I think ", help="Prompt for promotion (the paper's)."),
    suppress_prompt: str | None = typer.Option(None, help="Prompt for suppression (default: 'I think that {theme} ')."),
    min_similarity: float = typer.Option(RESIDUAL_CUT, help="Residual cut t_R of the flow graphs (the paper: 0.5)."),
    module_min_similarity: float = typer.Option(MODULE_CUT, help="Module cut of the flow graphs (the paper: 0.15)."),
    manifest: str | None = _MANIFEST,
    model: str | None = _MODEL,
    corpus: str | None = _CORPUS,
    seed: int = _SEED,
    device: str = _DEVICE,
    threads: int = _THREADS,
) -> None:
    """Steer a theme with flow graphs: strategies × schedules × strengths, promotion and suppression, scored offline (§5)."""
    from experiments import seeds as seed_mod
    from experiments import steering_eval as exp
    from experiments.context import load_context
    from experiments.texts import held_out_windows
    from experiments.topic import topic_scorer
    from queries.db import Graph
    from queries.flow_graph import Direction, build_flow_graph, normalise_seeds

    tmeta = _threads(threads)
    dev = _device(device)
    dirs = tuple(d.strip() for d in directions.split(",") if d.strip())
    bad = [d for d in dirs if d not in ("promote", "suppress")]
    if bad or not dirs:
        raise InvalidInput(
            f"--directions {directions!r} is not valid (valid: promote, suppress, or both comma-separated)"
        )
    scheds = tuple(x.strip() for x in schedules.split(",") if x.strip())
    bad = [x for x in scheds if x not in ("constant", "exponential", "linear")]
    if bad:
        raise InvalidInput(f"schedule {bad[0]!r} is not valid (valid: constant, exponential, linear)")
    ctx = load_context(atlas, manifest=manifest, model=model, device=dev)
    with Graph() as graph:
        graph.verify()
        if seeds:
            chosen = [
                {"uid": u, "score": float("nan"), "basis": "given"} for u in normalise_seeds(seeds.split(","), atlas)
            ]
        else:
            found = seed_mod.from_labels(graph, atlas, theme, topic_scorer(dev), n_seeds)
            if not found:
                reference = held_out_windows(ctx.model.tokenizer, 32, 64, seed=seed, corpus=corpus)
                found = seed_mod.from_activations(ctx, theme, reference, n_seeds)
            chosen = seed_mod.describe(found)
            if not chosen:
                raise InvalidInput(f"no feature of atlas {atlas!r} matches theme {theme!r} (give seeds with --seeds)")
        graphs = [
            build_flow_graph(
                graph,
                [str(d["uid"])],
                atlas=atlas,
                direction=Direction.BOTH,
                min_similarity=min_similarity,
                module_min_similarity=module_min_similarity,
            )
            for d in chosen
        ]
    bank = exp.load_bank(ctx.manifest_path, ctx.model)  # type: ignore[arg-type]  # load_context always sets it
    settings = exp.SteeringEvalSettings(
        theme=theme,
        promote_prompt=promote_prompt,
        suppress_prompt=suppress_prompt,
        strengths=_floats(strengths, "--strengths"),
        factors=_floats(factors, "--factors"),
        schedules=scheds,
        max_layers=max_layers,
        generations=generations,
        max_new_tokens=max_new_tokens,
        seed=seed,
        directions=dirs,
    )
    report = exp.run(ctx.model, bank, graphs, settings, atlas=atlas, seeds=chosen, meta=_meta(tmeta))
    _done(report, out, atlas)


@app.command("rescale")
def rescale(
    atlas: str = _ATLAS,
    out: Path = _OUT,
    manifest: str | None = _MANIFEST,
    model: str | None = _MODEL,
    corpus: str | None = _CORPUS,
    texts: int = typer.Option(12, help="Held-out texts (the unit of independence of every interval)."),
    tokens_per_text: int = typer.Option(2, help="Random edit tokens per text."),
    window: int = typer.Option(48, help="Tokens per text."),
    horizon: int = typer.Option(16, help="Next-token losses measured after the edited token."),
    layers: str | None = typer.Option(None, help="Target layers, e.g. '9,11' (default: the deactivation report's)."),
    max_targets: int = typer.Option(4, help="Active targets per (text, token, layer), drawn at random."),
    coefficients: str = typer.Option("-2,-1,0,0.5,1.5,2", help="Rescaling coefficients r (1 = unedited)."),
    seed: int = _SEED,
    device: str = _DEVICE,
    threads: int = _THREADS,
) -> None:
    """Rescale each target's active top-1 predecessors at one token by r and measure the target's activation
    change and the relative loss change over the next tokens (the paper's Fig. 7)."""
    from experiments import rescale as exp
    from experiments.texts import held_out_windows

    settings = exp.RescaleSettings(
        n_texts=texts,
        tokens_per_text=tokens_per_text,
        window=window,
        horizon=horizon,
        layers=tuple(int(x) for x in _floats(layers, "--layers")) if layers else None,
        max_targets=max_targets,
        coefficients=_floats(coefficients, "--coefficients"),
        seed=seed,
    )
    ctx, tmeta = _context(atlas, manifest, model, device, threads)
    windows = held_out_windows(ctx.model.tokenizer, texts, window, seed=seed, corpus=corpus)
    report = exp.run(ctx, windows, settings, meta=_meta({"corpus": corpus or "default (held-out split)", **tmeta}))
    _done(report, out, atlas)


@app.command("thresholds")
def thresholds(
    atlas: str = _ATLAS,
    out: Path = _OUT,
    rule: str = typer.Option("null:0.999", help="The rule compared with the fixed cuts: null:0.999 or null:0.99."),
) -> None:
    """Categories under the fixed cuts (0.5 / 0.25) vs each SAE pair's null quantile: counts per layer and
    module, and the fixed → null transition table (from the stored scores; no model)."""
    from experiments import categories as exp
    from queries.db import Graph

    with Graph() as graph:
        graph.verify()
        report = exp.thresholds(graph, atlas, exp.parse_rule(rule), meta=_meta())
    _done(report, out, atlas)


@app.command("transitions")
def transitions(atlas: str = _ATLAS, out: Path = _OUT) -> None:
    """Category of each res(L) feature vs its top-1 res(L+1) successor's (cf. the paper's Fig. 13), under the
    fixed cuts and the null:0.999 rule: counts and row shares with n (from the stored graph; no model)."""
    from experiments import categories as exp
    from queries.db import Graph

    with Graph() as graph:
        graph.verify()
        report = exp.transitions(graph, atlas, meta=_meta())
    _done(report, out, atlas)


@app.command("steering-bench")
def steering_bench(
    atlas: str = typer.Option(
        "smollm2-demo", "--atlas", help="Atlas name (its atlas.toml is found like `atlas steer`'s)."
    ),
    quick: bool = typer.Option(
        False,
        "--quick",
        help="Small settings (12 texts per concept, α ∈ {0.1, 0.3, 0.6}, 1 seed, 24 tokens, 3 concepts steered).",
    ),
    out_json: Path = typer.Option(Path("bench/results/steering-bench.json"), "--json", help="Where the JSON goes."),
    out_md: Path = typer.Option(
        Path("docs/reproduction/steering-bench.md"), "--report", help="Where the Markdown report goes."
    ),
    concepts: int | None = typer.Option(None, help="Use only the first N concepts (smoke runs)."),
    max_steered: int | None = typer.Option(None, help="Steer at most N gated concepts (default 20; --quick: 3)."),
    validation_prompts: int | None = typer.Option(None, help="Validation prompts (default 10)."),
    test_prompts: int | None = typer.Option(None, help="Test prompts (default 20)."),
    seeds: int | None = typer.Option(None, help="Sampling seeds per test prompt (default 3; --quick: 1)."),
    max_new_tokens: int | None = typer.Option(None, help="Tokens per generation (default 32; --quick: 24)."),
    per_concept: int | None = typer.Option(None, help="Positive texts per concept (default 24; --quick: 12)."),
    alphas: str | None = typer.Option(None, help="α grid, comma-separated (default 0.05..0.75)."),
    dtype: str = typer.Option("auto", help="auto (bf16 where the CPU has avx512_bf16/AMX) | bf16 | fp32."),
    manifest: str | None = _MANIFEST,
    model: str | None = _MODEL,
    corpus: str | None = _CORPUS,
    threads: int = typer.Option(0, "--threads", help="CPU threads for torch (0 = torch's default: every core)."),
    shared_machine: bool = typer.Option(
        False, "--shared-machine", help="Mark the timing not quiet whatever the load (other jobs share the cores)."
    ),
) -> None:
    """AxBench-style offline steering benchmark: flow graphs against single features, DiffMean, probe, prompting and controls."""
    from dataclasses import replace

    from experiments.steering_bench import concepts as cs
    from experiments.steering_bench import report as rp
    from experiments.steering_bench.run import BenchSettings, run, with_overrides

    if dtype not in ("auto", "bf16", "fp32"):
        raise InvalidInput(f"--dtype {dtype!r} is not valid (valid: auto, bf16, fp32)")
    _threads(threads)
    s = BenchSettings.quick_settings(atlas=atlas) if quick else BenchSettings(atlas=atlas)
    s = with_overrides(
        s,
        max_steered_concepts=max_steered,
        validation_prompts=validation_prompts,
        test_prompts=test_prompts,
        seeds=seeds,
        max_new_tokens=max_new_tokens,
        alphas=_floats(alphas, "--alphas") if alphas else None,
        dtype=dtype,
    )
    s = replace(s, shared_machine=shared_machine)
    if concepts is not None:
        if concepts < 1:
            raise InvalidInput(f"--concepts {concepts} is not valid (give at least 1)")
        s = replace(s, concepts=s.concepts[:concepts])
    if per_concept is not None:
        s = replace(s, data=replace(s.data, per_concept=per_concept))
    if s.validation_prompts > len(cs.eval_prompts("validation")) or s.test_prompts > len(cs.eval_prompts("test")):
        raise InvalidInput(
            f"at most {len(cs.eval_prompts('validation'))} validation and {len(cs.eval_prompts('test'))} test prompts exist"
        )
    out = run(s, progress=typer.echo, corpus=corpus, manifest=manifest, model=model)
    summary = rp.write(out, out_json, out_md, _meta()["command"])
    typer.echo(
        f"{summary['concepts_gated_in']}/{summary['concepts']} concepts gated in; flow_graph HM "
        f"{summary['methods']['flow_graph']['harmonic_mean']}; wrote {out_json} and {out_md} ({summary['wall_s'] / 60:.1f} min)"
    )
