"""``atlas steer``: generate baseline and steered text from the command line (same service as the API).

Heavy imports (torch, transformers) happen inside the handler so ``atlas --help`` stays fast.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

import typer

from queries.domain import MODULE_CUT, RESIDUAL_CUT
from queries.errors import InvalidInput


def _pairs(items: list[str], default: float | None, what: str) -> list[tuple[str, float | None]]:
    out: list[tuple[str, float | None]] = []
    for item in items:
        uid, sep, value = item.partition("=")
        try:
            out.append((uid.strip(), float(value) if sep else default))
        except ValueError:
            raise InvalidInput(f"{what} {item!r} is not valid (use UID or UID=STRENGTH, e.g. 12/res/77=6)") from None
    return out


def steer(
    atlas: str = typer.Argument(..., help="Atlas name (ingested with `atlas ingest`)."),
    prompt: list[str] = typer.Option(..., "--prompt", "-p", help="Prompt (repeat for a batch of up to 16)."),
    seed_feature: list[str] = typer.Option(
        [],
        "--seed-feature",
        "-s",
        help="Seed feature UID[=STRENGTH]; its flow graph is steered per --strategy. Repeatable.",
    ),
    feature: list[str] = typer.Option(
        [], "--feature", "-f", help="Feature UID[=STRENGTH] steered exactly as given (no graph). Repeatable."
    ),
    strength: float | None = typer.Option(
        None,
        help="Strength (ADD) or factor r (RESCALE) for features given without =STRENGTH (default 4; with --units "
        "alpha the atlas's measured default α).",
    ),
    mode: str = typer.Option("add", help="add: h += s·u·d at every position | rescale: h += (r−1)·a·d."),
    strategy: str = typer.Option("seeds", help="seeds | single | cumulative (paper §5.1)."),
    layer: int | None = typer.Option(None, help="The paper's l: SINGLE's layer / CUMULATIVE's last layer."),
    schedule: str = typer.Option("constant", help="constant | exponential | linear (CUMULATIVE)."),
    alpha: float = typer.Option(-0.05, help="α of the exponential schedule."),
    final_strength: float = typer.Option(1.0, help="s* of the linear schedule (coefficient at l_end)."),
    units: str = typer.Option(
        "activation",
        help="activation: s × the feature's typical activation | raw: s × the decoder row | alpha: a vector of norm "
        "s × the hook's median ‖h‖ (the steering benchmark's axis).",
    ),
    min_similarity: float = typer.Option(RESIDUAL_CUT, help="Residual cut of the flow graph (t_R)."),
    module_min_similarity: float = typer.Option(MODULE_CUT, help="Module cut of the flow graph (t_mod)."),
    top_k: int = typer.Option(1, help="Top-k links followed per step of the flow graph."),
    max_new_tokens: int = typer.Option(36, help="Tokens to generate (1–256)."),
    temperature: float = typer.Option(1.0, help="Sampling temperature; 0 = greedy."),
    top_p: float = typer.Option(1.0, help="Nucleus sampling top_p."),
    seed: int = typer.Option(0, help="RNG seed: the same seed reproduces the generation exactly."),
    chat: bool = typer.Option(False, help="Wrap prompts in the model's chat template."),
    manifest: str | None = typer.Option(None, help="The atlas's atlas.toml (else ATLAS_STEER_MANIFESTS)."),
    store: bool = typer.Option(True, help="Store the run in Neo4j as a SteeringRun."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Steer the model with features of an atlas and print baseline and steered text side by side."""
    from queries.db import Graph
    from steering.generate import GenerationConfig
    from steering.interventions import Mode, Schedule, Strategy, Units
    from steering.service import Steerer, SteeringSettings, SteerRequest

    def enum(cls: type[Enum], value: str, what: str) -> Any:
        try:
            return cls(value.lower())
        except ValueError:
            raise InvalidInput(f"{what} {value!r} is not valid (valid: {', '.join(m.value for m in cls)})") from None

    units_ = enum(Units, units, "--units")
    if strength is None and units_ is not Units.ALPHA:
        strength = 4.0
    req = SteerRequest(
        atlas=atlas,
        prompts=list(prompt),
        seeds=_pairs(seed_feature, strength, "--seed-feature"),
        features=_pairs(feature, strength, "--feature"),
        mode=enum(Mode, mode, "--mode"),
        strategy=enum(Strategy, strategy, "--strategy"),
        layer=layer,
        schedule=enum(Schedule, schedule, "--schedule"),
        alpha=alpha,
        final_strength=final_strength,
        units=units_,
        min_similarity=min_similarity,
        module_min_similarity=module_min_similarity,
        top_k=top_k,
        generation=GenerationConfig(
            max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed, chat=chat
        ),
        manifest=manifest,
        store=store,
    )
    with Graph() as graph:
        graph.verify()
        res = Steerer(graph, SteeringSettings()).steer(req)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "run_id": res.run_id,
                    "atlas": res.atlas,
                    "model": res.model,
                    "l_start": res.l_start,
                    "l_end": res.l_end,
                    "generations": [
                        {"prompt": p, "baseline": b, "steered": s}
                        for p, b, s in zip(res.prompts, res.baseline, res.steered)
                    ],
                    "features": [
                        {
                            "uid": a.feature.uid,
                            "coefficient": a.feature.coefficient,
                            "mode": a.feature.mode.value,
                            "unit": a.unit,
                            "vector_norm": a.vector_norm,
                        }
                        for a in res.applied
                    ],
                },
                indent=1,
            )
        )
        return
    typer.echo(
        f"model {res.model} · {len(res.applied)} feature(s) steered"
        + (f" · span {res.l_start}–{res.l_end}" if res.l_start is not None else "")
        + (f" · run {res.run_id}" if res.run_id else "")
    )
    for a in res.applied[:20]:
        typer.echo(f"  {a.feature.uid:<40} {a.feature.mode.value:<8} coefficient {a.feature.coefficient:+.3f}")
    if len(res.applied) > 20:
        typer.echo(f"  … {len(res.applied) - 20} more")
    for p, b, s in zip(res.prompts, res.baseline, res.steered):
        typer.echo(f"\nprompt:   {p!r}\nbaseline: {p}{b}\nsteered:  {p}{s}")
