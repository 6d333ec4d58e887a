"""The benchmark's pipeline: data → gate → methods → validation sweep (α chosen) → test once → report.

Design fixed before any run: splits by document (``concepts``); seeds chosen by train-split detection AUROC
among the atlas's res features, the gate (AUROC ≥ 0.75) read on validation, test AUROC reported; α per
concept and method chosen on the validation prompts (10, one sampling seed) by mean harmonic mean with
degenerate outputs ≤ 10%; the test prompts (20 × the sampling seeds) are generated once at that α. Primary
endpoint: the median over gated concepts of flow_graph − X (harmonic mean), X ∈ {sae_feature, diffmean,
diffmean_all_layers, seed_copied, random_direction, random_chain}, with a bootstrap over prompts and
concepts as clusters.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from experiments.steering_bench import concepts as cs
from experiments.steering_bench import methods as me
from experiments.steering_bench import protocol as pr
from experiments.steering_bench import scores as sc
from experiments.steering_bench.gate import seed_and_gate
from experiments.steering_bench.side_effects import benign_ce, benign_windows
from queries.ids import Module, parse_uid
from steering.hooks import HookPoint

if TYPE_CHECKING:
    from steering.model import LoadedModel
    from steering.saes import SAEBank

log = logging.getLogger(__name__)

FULL_ALPHAS = (0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.75)
QUICK_ALPHAS = (0.1, 0.3, 0.6)
GATE_AUROC = 0.75


@dataclass
class BenchSettings:
    atlas: str = "smollm2-demo"
    concepts: tuple[str, ...] = (*cs.CORPUS_CONCEPTS, *cs.GENERATED_CONCEPTS)
    data: cs.DataSettings = field(default_factory=cs.DataSettings)
    alphas: tuple[float, ...] = FULL_ALPHAS
    validation_prompts: int = 10
    test_prompts: int = 20
    seeds: int = 3  # sampling seeds per test prompt
    max_new_tokens: int = 32
    temperature: float = 0.7
    top_p: float = 0.9
    benign_windows: int = 8
    benign_tokens: int = 48
    # at most 20 gated concepts are steered (the first 20 in the list order; the rest keep their gate row):
    # it bounds the full run to ~90 min on 2 cores
    max_steered_concepts: int | None = 20
    batch_size: int = 72  # 7 α × 10 validation prompts in one generation batch
    seed: int = 0
    gate_auroc: float = GATE_AUROC
    dtype: str = "auto"  # auto: bf16 where the CPU has avx512_bf16 / AMX, else fp32
    quick: bool = False
    shared_machine: bool = False  # True: timings are marked not quiet whatever the load (other jobs share the cores)

    @classmethod
    def quick_settings(cls, **kw: Any) -> BenchSettings:
        return cls(
            data=cs.DataSettings(per_concept=12, negatives_per_instruction=2, max_new_tokens=40),
            alphas=QUICK_ALPHAS,
            seeds=1,
            max_new_tokens=24,
            benign_windows=4,
            benign_tokens=32,
            max_steered_concepts=3,
            quick=True,
            **kw,
        )


def _dtype(name: str, flags: list[str]) -> Any:
    import torch

    if name == "fp32" or (name == "auto" and not ({"avx512_bf16", "amx_bf16"} & set(flags))):
        return torch.float32
    return torch.bfloat16


@dataclass
class Scored:
    concept: np.ndarray
    fluency: np.ndarray
    instruction: np.ndarray
    hm: np.ndarray
    degenerate: np.ndarray
    lexicon: np.ndarray
    ppl_ratio: np.ndarray
    texts: list[str]

    def summary(self) -> dict[str, float]:
        return {
            "harmonic_mean": float(self.hm.mean()),
            "concept": float(self.concept.mean()),
            "fluency": float(self.fluency.mean()),
            "instruction": float(self.instruction.mean()),
            "degenerate_fraction": float(self.degenerate.mean()),
            "lexicon_rate": float(self.lexicon.mean()),
            "ppl_ratio_median": float(np.median(self.ppl_ratio)),
            "n": len(self.texts),
        }


class Bench:
    """State shared by the stages (model, SAEs, scorers) for one run."""

    def __init__(
        self, s: BenchSettings, lm: LoadedModel, bank: SAEBank, embed: sc.Embed, progress: Callable[[str], None]
    ) -> None:
        self.s, self.lm, self.bank, self.embed, self.progress = s, lm, bank, embed, progress
        self.header = lm.tokenizer("<|im_start|>assistant\n", add_special_tokens=False).input_ids
        self._instr_emb: dict[str, np.ndarray] = {}

    def instr_emb(self, prompts: list[str]) -> np.ndarray:
        missing = [p for p in prompts if p not in self._instr_emb]
        if missing:
            for p, e in zip(missing, self.embed(missing)):
                self._instr_emb[p] = e
        return np.stack([self._instr_emb[p] for p in prompts])

    def generate(
        self,
        prompts: list[str],
        seed: int,
        steer: me.Steer | None = None,
        scales: list[float] | None = None,
        concept: str | None = None,
    ) -> list[list[int]]:
        from steering.batch import sample

        texts = [
            self.lm.format_prompt(f"{p} In your answer, talk about {concept}." if concept else p, chat=True)
            for p in prompts
        ]
        return sample(
            self.lm,
            texts,
            max_new_tokens=self.s.max_new_tokens,
            temperature=self.s.temperature,
            top_p=self.s.top_p,
            seed=seed,
            edits=steer.ops if steer else None,
            scales=scales,
            batch_size=self.s.batch_size,
        )

    def nll(self, ids: list[list[int]]) -> np.ndarray:
        from steering.batch import nll

        return nll(self.lm, [self.header] * len(ids), ids, batch_size=self.s.batch_size)

    def score(
        self,
        ids: list[list[int]],
        prompts: list[str],
        clf: sc.ConceptClassifier | None,
        ref_ppl: float,
        rel: sc.Relevance,
    ) -> Scored:
        texts = [self.lm.tokenizer.decode(r, skip_special_tokens=True).strip() for r in ids]
        ratio = np.exp(self.nll(ids)) / ref_ppl
        ratio = np.where(np.isfinite(ratio), ratio, np.inf)
        flu = np.array([sc.fluency(t, r) for t, r in zip(texts, ratio)])
        deg = np.array([sc.is_degenerate(t, r) for t, r in zip(texts, ratio)], dtype=float)
        inst = rel.score(self.instr_emb(prompts), self.embed(texts))
        conc = clf.proba(texts) if clf is not None else np.zeros(len(texts))
        lex = np.array([sc.lexicon_rate(t, clf.lexicon) for t in texts]) if clf is not None else np.zeros(len(texts))
        hm = np.array([sc.harmonic_mean(c, f, i) for c, f, i in zip(conc, flu, inst)])
        return Scored(conc, flu, inst, hm, deg, lex, ratio, texts)


def run(
    s: BenchSettings,
    *,
    progress: Callable[[str], None] = log.info,
    corpus: str | None = None,
    manifest: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """Load the atlas's model (bf16 where the CPU has it) and SAEs, then :func:`run_with`."""
    from experiments.report import cpu_model_and_flags
    from interop.embeddings import TextEmbedder
    from saes.locate import find_manifest
    from steering.model import load_model
    from steering.saes import SAEBank
    from steering.service import SteeringSettings

    started = time.perf_counter()
    load_start = os.getloadavg()
    _, flags = cpu_model_and_flags()
    man = find_manifest(s.atlas, explicit=manifest, search=SteeringSettings().manifests)
    lm = load_model(model or man.model, dtype=_dtype(s.dtype, flags))
    bank = SAEBank(man, lm)
    embed = TextEmbedder().embed
    return run_with(s, lm, bank, embed, progress=progress, corpus=corpus, started=started, load_start=load_start)


def run_with(
    s: BenchSettings,
    lm: LoadedModel,
    bank: SAEBank,
    embed: sc.Embed,
    *,
    progress: Callable[[str], None] = log.info,
    corpus: str | None = None,
    started: float | None = None,
    load_start: tuple[float, float, float] | None = None,
) -> dict[str, Any]:
    """Run the benchmark on a loaded model and atlas; every number the report shows (see ``report``)."""
    import torch

    from experiments.report import cpu_model_and_flags, machine_description

    started = started if started is not None else time.perf_counter()
    load_start = load_start or os.getloadavg()
    cpu, flags = cpu_model_and_flags()
    points = sorted(HookPoint(e.layer, e.module) for e in bank.manifest.saes)
    b = Bench(s, lm, bank, embed, progress)
    rng = np.random.default_rng(s.seed)
    stage_s: dict[str, float] = {}

    # 1. data
    progress("data: generating / loading concept and neutral texts")
    from saes.cache import CacheSettings

    cache = CacheSettings().cache_dir / "steering-bench"
    data, negatives, data_record = cs.build_data(lm, s.concepts, s.data, cache=cache, corpus=corpus)

    # 2. activations, calibration, gate
    progress("gate: encoding every text at every SAE")
    all_texts = [t.text for c in data for t in c.positives] + [t.text for t in negatives]
    calib = [False] * (len(all_texts) - len(negatives)) + [True] * len(negatives)
    acts = me.collect(lm, bank, points, all_texts, calib=calib)
    offsets, k = {}, 0
    for c in data:
        offsets[c.name] = np.arange(k, k + len(c.positives))
        k += len(c.positives)
    neg_idx = {sp: np.array([k + i for i, t in enumerate(negatives) if t.split == sp]) for sp in cs.SPLITS}
    index = me.graph_index(bank, points, seed=s.seed)
    res_points = [p for p in points if p.module is Module.RES]
    gates = [seed_and_gate(s.atlas, s.gate_auroc, c, offsets[c.name], neg_idx, acts, index, res_points) for c in data]
    # 3. classifiers (every concept: the unsteered and prompt rows are reported for all)
    progress("scores: training the concept classifiers")
    neg_text = {sp: [t.text for t in negatives if t.split == sp] for sp in cs.SPLITS}
    clfs: dict[str, sc.ConceptClassifier] = {}
    for c, g in zip(data, gates):
        clf = sc.ConceptClassifier.fit(c.texts("train"), neg_text["train"], b.embed, seed=s.seed)
        g["classifier"] = clf.accuracy(c.texts("test"), neg_text["test"])
        g["lexicon"] = clf.lexicon[:10]
        clfs[c.name] = clf

    # 4. unsteered references per split
    val_prompts = cs.eval_prompts("validation")[: s.validation_prompts]
    test_prompts = cs.eval_prompts("test")[: s.test_prompts]
    test_seeds = [s.seed + 1000 * (i + 1) for i in range(s.seeds)]
    progress("unsteered generations (validation + test)")
    base_val = b.generate(val_prompts, s.seed)
    base_test = {sd: b.generate(test_prompts, sd) for sd in test_seeds}
    ref_val = float(np.median(np.exp(b.nll(base_val))))
    all_test = [r for sd in test_seeds for r in base_test[sd]]
    test_p_all = [p for _ in test_seeds for p in test_prompts]
    ref_test = float(np.median(np.exp(b.nll(all_test))))

    def rel_of(ids: list[list[int]], prompts: list[str]) -> sc.Relevance:
        texts = [lm.tokenizer.decode(r, skip_special_tokens=True) for r in ids]
        return sc.Relevance.calibrate(b.instr_emb(prompts), b.embed(texts))

    rel_val, rel_test = rel_of(base_val, val_prompts), rel_of(all_test, test_p_all)
    benign = benign_windows(lm, negatives, corpus, n_windows=s.benign_windows, n_tokens=s.benign_tokens, seed=s.seed)
    base_ce = float(np.nanmean(benign_ce(lm, benign, None, None, s.batch_size)))

    # 5. per gated concept: methods, validation sweep, test
    gated = [g for g in gates if g["gated_in"]]
    steered = gated if s.max_steered_concepts is None else gated[: s.max_steered_concepts]
    results: dict[str, dict[str, Any]] = {}
    stage_s["setup"] = time.perf_counter() - started
    t0 = time.perf_counter()
    for ci, g in enumerate(steered):
        name = g["concept"]
        progress(f"[{ci + 1}/{len(steered)}] steering {name!r} (seed {g['seed']}, graph {g['graph_nodes']} nodes)")
        clf = clfs[name]
        per: dict[str, Any] = {}
        seed_ref = parse_uid(g["seed"], s.atlas)
        steers = me.build_methods(lm, bank, seed_ref, g["graph"], acts, g["pos"]["train"], neg_idx["train"], rng=rng)
        # unsteered and prompt
        per["unsteered"] = {
            "test": b.score(all_test, test_p_all, clf, ref_test, rel_test),
            "validation": b.score(base_val, val_prompts, clf, ref_val, rel_val),
        }
        pt = [r for sd in test_seeds for r in b.generate(test_prompts, sd, concept=name)]
        per["prompt"] = {"test": b.score(pt, test_p_all, clf, ref_test, rel_test)}
        for m, st in steers.items():
            alphas = list(s.alphas)
            rows_p = [p for _ in alphas for p in val_prompts]
            rows_a = [a for a in alphas for _ in val_prompts]
            ids = b.generate(rows_p, s.seed, st, rows_a)
            vs = b.score(ids, rows_p, clf, ref_val, rel_val)
            n = len(val_prompts)
            sweep = []
            for ai, a in enumerate(alphas):
                sl = slice(ai * n, (ai + 1) * n)
                sub = Scored(
                    vs.concept[sl],
                    vs.fluency[sl],
                    vs.instruction[sl],
                    vs.hm[sl],
                    vs.degenerate[sl],
                    vs.lexicon[sl],
                    vs.ppl_ratio[sl],
                    vs.texts[sl],
                )
                sweep.append({"alpha": a, **sub.summary()})
            ce = benign_ce(lm, benign, st, alphas, s.batch_size)
            for row, d in zip(sweep, ce):
                row["side_effect_ce"] = float(d - base_ce)
            choice = pr.choose_alpha(
                alphas, [r["harmonic_mean"] for r in sweep], [r["degenerate_fraction"] for r in sweep]
            )
            auc = pr.tradeoff_auc(
                [r["side_effect_ce"] for r in sweep],
                [r["concept"] for r in sweep],
                float(per["unsteered"]["validation"].concept.mean()),
            )
            tp = [r for sd in test_seeds for r in b.generate(test_prompts, sd, st, [choice.alpha] * len(test_prompts))]
            per[m] = {
                "test": b.score(tp, test_p_all, clf, ref_test, rel_test),
                "sweep": sweep,
                "choice": asdict(choice),
                "tradeoff_auc": auc,
                "points": st.points,
                "features": st.features[:20],
                "n_features": len(st.features),
            }
        per["suppression"] = _suppression(b, s, name, g, clf, test_seeds, ref_test, rel_test)
        results[name] = per
        stage_s[f"steer:{name}"] = time.perf_counter() - t0
        t0 = time.perf_counter()
    wall = time.perf_counter() - started
    load_end = os.getloadavg()
    return {
        "settings": _settings_dict(s),
        "data_record": data_record,
        "gates": [
            {k: v for k, v in g.items() if k not in ("graph", "pos")}
            | {"graph_uids": [n.uid for n in g["graph"].nodes]}
            for g in gates
        ],
        "graph_cuts": {f"{L}-{m}": v for (L, m), v in sorted(index.cuts.items())},
        "median_norm": {str(p): v for p, v in acts.median_norm.items()},
        "references": {
            "ppl_validation": ref_val,
            "ppl_test": ref_test,
            "relevance_validation": asdict(rel_val),
            "relevance_test": asdict(rel_test),
            "benign_ce": base_ce,
            "benign_windows": len(benign),
        },
        "results": results,
        "test_prompts": test_prompts,
        "validation_prompts": val_prompts,
        "test_seeds": test_seeds,
        "model": {
            "name": lm.name,
            "source": lm.source,
            "dtype": str(lm.dtype).replace("torch.", ""),
            "note": _model_note(lm),
        },
        "machine": machine_description() | {"cpu": cpu, "torch_threads": torch.get_num_threads()},
        "cpu_flags": flags,
        "load_start": list(load_start),
        "load_end": list(load_end),
        "quiet": bool(load_start[0] <= 3 and load_end[0] <= 3 and not s.shared_machine),
        "stage_s": stage_s,
        "wall_s": wall,
    }


SUPPRESS_INSTRUCTIONS = (
    "Tell me about {c}.",
    "What do you know about {c}?",
    "Describe {c} in a few words.",
    "Write a short note about {c}.",
)


def _suppression(
    b: Bench,
    s: BenchSettings,
    name: str,
    g: dict[str, Any],
    clf: sc.ConceptClassifier,
    seeds: list[int],
    ref_ppl: float,
    rel: sc.Relevance,
) -> dict[str, Any]:
    """The paper's suppression claim: rescaling (r = 0, the feature's term removed) the seed alone vs every
    node of its flow graph, on instructions that invite the concept; concept probability and fluency."""
    from steering.interventions import Mode, SteerFeature, compile_plan

    prompts = [t.format(c=name) for t in SUPPRESS_INSTRUCTIONS]
    uids = {"seed_only": [g["seed"]], "graph": [n.uid for n in g["graph"].nodes]}
    out: dict[str, Any] = {"prompts": prompts}
    rows = [p for _ in seeds for p in prompts]
    base = b.score([r for sd in seeds for r in b.generate(prompts, sd)], rows, clf, ref_ppl, rel)
    out["unsteered"] = base.summary()
    for key, us in uids.items():
        plan = compile_plan([SteerFeature(parse_uid(u, s.atlas), 0.0, Mode.RESCALE) for u in us], b.bank)
        edits: dict[Any, Any] = {(op.hook or p): op for p, op in plan.ops.items()}
        steer = me.Steer(key, edits, us)
        sc_ = b.score([r for sd in seeds for r in b.generate(prompts, sd, steer)], rows, clf, ref_ppl, rel)
        d, lo, hi = pr.paired_interval(base.concept, sc_.concept, seed=4)
        out[key] = sc_.summary() | {"concept_drop": d, "concept_drop_ci": [lo, hi], "examples": sc_.texts[:2]}
        out[key]["_concept"] = sc_.concept
    out["_base_concept"] = base.concept
    return out


def _model_note(lm: LoadedModel) -> str:
    from steering.model import describe_model

    d = describe_model(lm.name)
    return d[len(lm.name) :].strip(" ()") if d != lm.name else ""


def _settings_dict(s: BenchSettings) -> dict[str, Any]:
    d = asdict(s)
    d["concepts"] = list(s.concepts)
    return d


def with_overrides(s: BenchSettings, **kw: Any) -> BenchSettings:
    return replace(s, **{k: v for k, v in kw.items() if v is not None})
