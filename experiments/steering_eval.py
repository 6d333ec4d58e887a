"""Experiment 3 (paper §5): steer a theme with whole flow graphs and score the generations offline.

Sweep: direction (promotion: additive ``s``; suppression: rescaling ``r``) × strategy (seeds only /
single layer l / cumulative up to l) × schedule (cumulative only: constant / exponential / linear) ×
strength, with several seeded generations per setting (the paper's sampling: top_p 0.7, T 1.27).

Scores (no LLM judge is reachable; see ``experiments.topic`` and ``experiments.coherence``):
topic ∈ [0, 1] = embedding cosine to the theme; coherence ∈ [0, 1] from perplexity under the unsteered
model and the repetition rate. Products as in the paper: promotion topic × coherence, suppression
(1 − topic) × coherence; the best setting per layer and strategy is what Figs. 9–11 plot.

Computation here (:func:`evaluate`); the report in ``experiments.steering_report``, the settings in
``experiments.steering_settings``. The steering itself is the steering package's (``select_from_graph``, ``merge_features``,
``compile_plan``, ``generate``); flow graphs come from ``queries.flow_graph`` (one builder).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from experiments.coherence import coherence_score, continuation_nll, repetition_rate
from experiments.report import Report
from experiments.steering_report import write_report
from experiments.steering_settings import (
    STRATEGY_LINES,
    Setting,
    SteeringEvalSettings,
    best_per_layer,
    choose_for_report,
    prompts_by_direction,
)

if TYPE_CHECKING:
    from queries.flow_graph import FlowGraph
    from steering.model import LoadedModel

# Importable from here as before the split (the CLI and tests use these names).
__all__ = [
    "STRATEGY_LINES",
    "Setting",
    "SteeringEvalSettings",
    "best_per_layer",
    "choose_for_report",
    "evaluate",
    "features_for",
    "load_bank",
    "plan_settings",
    "run",
    "sweep_layers",
    "write_report",
]

log = logging.getLogger(__name__)


def sweep_layers(graphs: list[FlowGraph], max_layers: int) -> list[int]:
    layers = sorted({n.layer for g in graphs for n in g.nodes})
    if len(layers) <= max_layers:
        return layers
    idx = np.unique(np.round(np.linspace(0, len(layers) - 1, max_layers)).astype(int))
    return [layers[i] for i in idx]


def plan_settings(graphs: list[FlowGraph], s: SteeringEvalSettings) -> list[Setting]:
    """Every setting of the sweep (unsteered baselines first)."""
    out = [Setting("none", "unsteered", None, None, None, p) for p in dict.fromkeys(prompts_by_direction(s).values())]
    layers = sweep_layers(graphs, s.max_layers)
    for direction in s.directions:
        prompt = prompts_by_direction(s)[direction]
        coefs = s.strengths if direction == "promote" else s.factors
        for c in coefs:
            out.append(Setting(direction, "seeds", None, None, c, prompt))
            for layer in layers:
                out.append(Setting(direction, "single", layer, None, c, prompt))
                for sched in s.schedules:
                    out.append(Setting(direction, "cumulative", layer, sched, c, prompt))
    return out


def features_for(setting: Setting, graphs: list[FlowGraph]) -> list[Any]:
    from steering.interventions import Mode, Schedule, Strategy, merge_features, select_from_graph

    mode = Mode.ADD if setting.direction == "promote" else Mode.RESCALE
    feats = []
    for g in graphs:
        feats += select_from_graph(
            g,
            Strategy(setting.strategy),
            float(setting.coefficient or 0.0),
            layer=setting.layer,
            schedule=Schedule(setting.schedule or "constant"),
            mode=mode,
        )
    return merge_features(feats)


class _Meter:
    """Wraps one hook point's edit and adds up the norm of what it changes (zero: the edit was a no-op,
    e.g. suppressing features that never fire on this text)."""

    def __init__(self, op: Any) -> None:
        self.op, self.total = op, 0.0
        self.hook = getattr(op, "hook", None)  # SteeringPlan.apply reads where the op applies

    def __call__(self, h: Any) -> Any:
        out = self.op(h)
        self.total += float((out - h).float().norm())
        return out


def _generate(lm: LoadedModel, st: Setting, graphs: list[FlowGraph], bank: Any, cfg: Any, n: int) -> None:
    """Generate ``n`` seeded texts per prompt of ``st`` (unsteered when it has no plan), metering the edits."""
    from steering.generate import generate
    from steering.interventions import compile_plan

    plan = None
    if st.strategy != "unsteered":
        feats = features_for(st, graphs)
        st.n_features = len(feats)
        if not feats:
            return  # e.g. a single layer where no graph has a node
        plan = compile_plan(feats, bank)
        meters = {pt: _Meter(op) for pt, op in plan.ops.items()}
        plan.ops = meters  # type: ignore[assignment]  # SteeringPlan.apply installs any callables
    prompts = [p for p in st.all_prompts for _ in range(n)]
    st.texts = generate(lm, prompts, cfg, plan).texts
    st.text_prompts = prompts
    if plan is not None:
        st.applied_norm = float(sum(m.total for m in meters.values()))


def _score(lm: LoadedModel, settings: list[Setting], s: SteeringEvalSettings, device: str) -> None:
    """Topic, perplexity under the unsteered model and repetition of every text (no hook installed)."""
    from experiments.topic import topic_scorer

    tok = lm.tokenizer
    scorer = topic_scorer(device)
    all_texts = [t for st in settings for t in st.texts]
    topics = scorer.topic_scores(all_texts, s.theme) if all_texts else np.zeros(0)
    pos = 0
    for st in settings:
        n = len(st.texts)
        st.topic = [float(x) for x in topics[pos : pos + n]]
        pos += n
        st.nll, st.repetition = [], []
        for prompt in dict.fromkeys(st.text_prompts):
            idx = [i for i, p in enumerate(st.text_prompts) if p == prompt]
            p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
            conts = [tok(st.texts[i], add_special_tokens=False)["input_ids"] for i in idx]
            with lm.lock:
                nll = continuation_nll(lm.model, p_ids, conts)
            st.nll += [float(x) for x in nll]
            st.repetition += [repetition_rate(c) for c in conts]
        # keep the per-text order of text_prompts (grouped above by prompt, which is how they were generated)


def evaluate(
    lm: LoadedModel, bank: Any, graphs: list[FlowGraph], s: SteeringEvalSettings, *, device: str = "cpu"
) -> dict[str, Any]:
    """Sweep every setting on the selection prompts, choose the winners there, re-generate the winners,
    seeds-only and unsteered on held-out report prompts, and score everything."""
    from steering.generate import GenerationConfig

    settings = plan_settings(graphs, s)
    cfg = GenerationConfig(max_new_tokens=s.max_new_tokens, temperature=s.temperature, top_p=s.top_p, seed=s.seed)
    started = time.perf_counter()
    for k, st in enumerate(settings):
        _generate(lm, st, graphs, bank, cfg, s.generations)
        if k % 10 == 0:
            log.info("steering sweep: %d/%d settings, %.0f s", k + 1, len(settings), time.perf_counter() - started)
    gen_s = time.perf_counter() - started
    _score(lm, settings, s, device)
    _finish(settings)
    # held-out report stage: the settings chosen on the selection prompts, plus the references
    report_settings: list[Setting] = []
    for direction in s.directions:
        chosen = choose_for_report([st for st in settings if st.direction == direction], direction)
        prompts = s.report_prompts(direction)
        base = Setting("none", "unsteered", None, None, None, prompts[0], stage="report", prompts=prompts)
        report_settings.append(base)
        for role, st in chosen.items():
            rs = Setting(
                direction,
                st.strategy,
                st.layer,
                st.schedule,
                st.coefficient,
                prompts[0],
                stage="report",
                prompts=prompts,
                role=role,
            )
            report_settings.append(rs)
    for st in report_settings:
        _generate(lm, st, graphs, bank, cfg, s.generations)
    _score(lm, report_settings, s, device)
    _finish(report_settings)
    return {
        "settings_config": asdict(s),
        "reference_perplexity": {},
        "generation_s": gen_s,
        "scoring_s": time.perf_counter() - started - gen_s,
        "n_generations": sum(len(st.texts) for st in settings + report_settings),
        "settings": settings,
        "report_settings": report_settings,
    }


def _finish(settings: list[Setting]) -> None:
    """Coherence against the unsteered texts of the same prompt, and the baseline-equality flag."""
    base_texts: dict[str, list[str]] = {}
    ref: dict[str, float] = {}
    for st in settings:
        if st.strategy != "unsteered":
            continue
        for p in dict.fromkeys(st.text_prompts):
            idx = [i for i, q in enumerate(st.text_prompts) if q == p]
            base_texts[p] = [st.texts[i] for i in idx]
            ppl = np.exp(np.array([st.nll[i] for i in idx if np.isfinite(st.nll[i])]))
            ref[p] = float(np.median(ppl)) if len(ppl) else float("nan")
    for st in settings:
        st.coherence = [
            coherence_score(n, r, ref.get(p, float("nan"))) for n, r, p in zip(st.nll, st.repetition, st.text_prompts)
        ]
        if st.strategy != "unsteered" and st.texts and base_texts:
            # same prompt, same seed, same position in the batch: identical text means the edit changed nothing
            mine: dict[str, list[str]] = {}
            for t, p in zip(st.texts, st.text_prompts):
                mine.setdefault(p, []).append(t)
            st.equals_baseline = all(base_texts.get(p) == ts for p, ts in mine.items())


def run(
    lm: LoadedModel,
    bank: Any,
    graphs: list[FlowGraph],
    s: SteeringEvalSettings,
    *,
    atlas: str,
    seeds: list[dict[str, Any]],
    meta: dict[str, Any] | None = None,
) -> Report:
    """Compute the sweep (:func:`evaluate`), then write its report (:func:`experiments.steering_report.write_report`)."""
    started = time.time()
    res = evaluate(lm, bank, graphs, s)
    return write_report(res, graphs, s, model=lm.name, atlas=atlas, seeds=seeds, meta=meta, started=started)


def load_bank(manifest_path: Path, lm: LoadedModel) -> Any:
    from saes.manifest import load_manifest
    from steering.saes import SAEBank

    return SAEBank(load_manifest(manifest_path), lm)
