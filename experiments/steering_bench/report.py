"""Summary, JSON and Markdown of a benchmark run (``bench/results/steering-bench.json`` and
``docs/reproduction/steering-bench.md``). Every number in the Markdown is in the JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from experiments.report import md_table
from experiments.steering_bench import protocol as pr
from experiments.steering_bench.methods import METHODS, STEERED_METHODS

COMPARISONS = {
    "flow_graph_beats_sae_feature": ("sae_feature",),
    "flow_graph_beats_diffmean": ("diffmean", "diffmean_all_layers"),
    "flow_graph_beats_seed_copied": ("seed_copied",),
    "flow_graph_beats_random": ("random_direction", "random_chain"),
}
MAX_PPL_RATIO_AT_DEFAULT = 1.5


def _matrix(res: dict[str, Any], concepts: list[str], method: str, attr: str, n_seeds: int) -> np.ndarray:
    rows = []
    for c in concepts:
        v = np.asarray(getattr(res[c][method]["test"], attr), dtype=float)
        rows.append(v.reshape(n_seeds, -1).mean(0))  # seed-major order: mean over seeds per prompt
    return np.array(rows)


def summarise(out: dict[str, Any]) -> dict[str, Any]:
    res = out["results"]
    concepts = list(res)
    n_seeds = len(out["test_seeds"])
    methods: dict[str, Any] = {}
    hm = {}
    for m in METHODS:
        if not concepts:
            methods[m] = dict.fromkeys(
                ("harmonic_mean", "concept", "fluency", "instruction", "degenerate_fraction", "alpha_median")
            ) | {"ci": [None, None]}
            continue
        hm[m] = _matrix(res, concepts, m, "hm", n_seeds)
        est, lo, hi = pr.bootstrap_mean(hm[m], seed=1)
        alphas = [res[c][m]["choice"]["alpha"] for c in concepts if "choice" in res[c][m]]
        aucs = [res[c][m]["tradeoff_auc"] for c in concepts if "tradeoff_auc" in res[c][m]]
        methods[m] = {
            "harmonic_mean": est,
            "ci": [lo, hi],
            "concept": float(_matrix(res, concepts, m, "concept", n_seeds).mean()),
            "fluency": float(_matrix(res, concepts, m, "fluency", n_seeds).mean()),
            "instruction": float(_matrix(res, concepts, m, "instruction", n_seeds).mean()),
            "degenerate_fraction": float(np.mean([res[c][m]["test"].degenerate.mean() for c in concepts])),
            "lexicon_rate": float(np.mean([res[c][m]["test"].lexicon.mean() for c in concepts])),
            "ppl_ratio_median": float(np.median(np.concatenate([res[c][m]["test"].ppl_ratio for c in concepts]))),
            "alpha_median": float(np.median(alphas)) if alphas else None,
            "alpha_admissible_share": float(
                np.mean([res[c][m]["choice"]["admissible"] for c in concepts if "choice" in res[c][m]])
            )
            if alphas
            else None,
            "tradeoff_auc_median": float(np.median(aucs)) if aucs else None,
        }
    comps: dict[str, Any] = {}
    flags: dict[str, bool] = {}
    for key, others in COMPARISONS.items():
        parts = {o: pr.bootstrap_median_difference(hm["flow_graph"], hm[o], seed=2) for o in others} if concepts else {}
        comps[key] = parts
        flags[key] = bool(parts) and all(p["beats"] for p in parts.values())
    extra = {}
    if concepts:
        extra["flow_graph_vs_prompt"] = pr.bootstrap_median_difference(hm["flow_graph"], hm["prompt"], seed=2)
        extra["sae_feature_vs_prompt"] = pr.bootstrap_median_difference(hm["sae_feature"], hm["prompt"], seed=2)
        extra["flow_graph_clamp_vs_sae_feature_clamp"] = pr.bootstrap_median_difference(
            hm["flow_graph_clamp"], hm["sae_feature_clamp"], seed=2
        )
    steered = []
    for c in concepts:
        fg, un = res[c]["flow_graph"]["test"], res[c]["unsteered"]["test"]
        d, lo, hi = pr.paired_interval(fg.concept, un.concept, seed=3)
        ppl = float(np.median(fg.ppl_ratio))
        steered.append(
            {
                "concept": c,
                "gain": d,
                "low": lo,
                "high": hi,
                "ppl_ratio_median": ppl,
                "steered": bool(lo > 0 and ppl <= MAX_PPL_RATIO_AT_DEFAULT),
            }
        )
    supp: dict[str, Any] = {"per_concept": []}
    if concepts:
        seed_m = np.array([res[c]["suppression"]["seed_only"]["_concept"] for c in concepts])
        graph_m = np.array([res[c]["suppression"]["graph"]["_concept"] for c in concepts])
        supp["graph_suppresses_more_than_seed_only"] = pr.bootstrap_median_difference(seed_m, graph_m, seed=5)
        for c in concepts:
            x = res[c]["suppression"]
            supp["per_concept"].append(
                {
                    "concept": c,
                    "unsteered_concept": x["unsteered"]["concept"],
                    **{
                        f"{k}_{f}": x[k][f]
                        for k in ("seed_only", "graph")
                        for f in ("concept", "concept_drop", "concept_drop_ci", "fluency", "degenerate_fraction")
                    },
                }
            )
    gates = out["gates"]
    return {
        "suppression": supp,
        "concepts": len(gates),
        "concepts_gated_in": sum(g["gated_in"] for g in gates),
        "concepts_steered": len(concepts),
        "test_prompts": len(out["test_prompts"]),
        "validation_prompts": len(out["validation_prompts"]),
        "seeds": n_seeds,
        "wall_s": out["wall_s"],
        "cpu_flags": out["cpu_flags"],
        "quiet": out["quiet"],
        "load_start": out["load_start"],
        "load_end": out["load_end"],
        "methods": methods,
        **flags,
        "comparisons": comps | extra,
        "concepts_steered_at_default": sum(x["steered"] for x in steered),
        "steered_at_default": steered,
        "default_note": (
            "flow_graph at each concept's validation-chosen alpha; the steer mutation's default (units ALPHA, "
            "`atlas steerability --bench-json`) is a tested seed's own chosen alpha, else the median over concepts"
        ),
    }


def _span_note(out: dict[str, Any]) -> str:
    res = out["results"]
    one = [c for c, per in res.items() if len(per["seed_copied"]["points"]) == 1]
    single = [
        c for c, per in res.items() if len(per["flow_graph"]["points"]) == 1 and per["flow_graph"]["n_features"] == 1
    ]
    return (
        f"`seed_copied` had only the seed's own layer for {len(one)} of {len(res)} steered concepts (the seed sits at the end of "
        f"its graph's span, or the span is one layer), where it is `sae_feature` itself; the flow graph was the seed alone for "
        f"{len(single)} of {len(res)} (no edge above its pair's null p99.9), where `flow_graph` is `sae_feature` too."
    )


def _suppression_md(s: dict[str, Any]) -> str:
    sp = s["suppression"]
    if not sp["per_concept"]:
        return "No concept was steered."
    rows = [
        [
            r["concept"],
            _f(r["unsteered_concept"]),
            _f(r["seed_only_concept"]),
            f"{_f(r['seed_only_concept_drop'])} [{_f(r['seed_only_concept_drop_ci'][0])}, {_f(r['seed_only_concept_drop_ci'][1])}]",
            _f(r["seed_only_fluency"]),
            _f(r["graph_concept"]),
            f"{_f(r['graph_concept_drop'])} [{_f(r['graph_concept_drop_ci'][0])}, {_f(r['graph_concept_drop_ci'][1])}]",
            _f(r["graph_fluency"]),
        ]
        for r in sp["per_concept"]
    ]
    t = md_table(
        ["concept", "unsteered concept", "seed only", "drop [95% CI]", "fluency", "graph", "drop [95% CI]", "fluency"],
        rows,
    )
    g = sp["graph_suppresses_more_than_seed_only"]
    return (
        f"{t}\n\nMedian over concepts of (seed-only − graph) concept probability: {_f(g['median'], 3)} "
        f"[{_f(g['low'], 3)}, {_f(g['high'], 3)}]; graph suppresses more than seeds only: **{'yes' if g['beats'] else 'no'}**."
    )


def _f(x: Any, nd: int = 2) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def to_json(out: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    per_concept = {}
    for c, per in out["results"].items():
        per_concept[c] = {
            m: {
                "test": v["test"].summary(),
                **{k: v[k] for k in ("sweep", "choice", "tradeoff_auc", "points", "features", "n_features") if k in v},
                "examples": v["test"].texts[:2],
            }
            for m, v in per.items()
            if m != "suppression"
        }
        per_concept[c]["unsteered"]["validation"] = per["unsteered"]["validation"].summary()
        per_concept[c]["suppression"] = {
            k: ({f: x for f, x in v.items() if not f.startswith("_")} if isinstance(v, dict) else v)
            for k, v in per["suppression"].items()
            if not k.startswith("_")
        }
    rest = {k: v for k, v in out.items() if k != "results"}
    return summary | {"per_concept": per_concept, "run": rest}


def markdown(out: dict[str, Any], s: dict[str, Any], command: str) -> str:
    model = out["model"]
    lines = [
        "# Steering benchmark (AxBench-style, offline): flow graphs against single features, DiffMean, probes, prompting and controls",
        "",
        f"Model: {model['name']} ({model['note'] or model['source']}; run in {model['dtype']}). Atlas: `{out['settings']['atlas']}`. "
        f"Machine: {out['machine'].get('cpu')}, {out['machine'].get('cores')} cores, torch threads {out['machine'].get('torch_threads')}; "
        f"load {out['load_start'][0]:.1f} at start, {out['load_end'][0]:.1f} at end (**quiet: {str(out['quiet']).lower()}**). "
        f"Wall time {out['wall_s'] / 60:.1f} min. {'`--quick` settings: not the benchmark of record.' if out['settings']['quick'] else ''}",
        "",
        f"Reproduce: `{command}`",
        "",
        "## Design (fixed before the run)",
        "",
        f"- **Concepts**: {s['concepts']} ({', '.join(g['concept'] for g in out['gates'])}). Positives: held-out corpus chunks where the corpus has the concept, "
        'otherwise the model\'s own chat answers to "Write two sentences about {concept}."; negatives: its answers to neutral instructions '
        f"(generation settings: `{json.dumps(out['data_record']['settings'])}`). Split train/validation/test by a hash of the document.",
        f"- **Gate**: the seed is the res feature with the highest train-split detection AUROC (mean activation over non-sink tokens); "
        f"a concept is steered only if the seed or its flow graph reaches AUROC ≥ {out['settings']['gate_auroc']} on validation. "
        "Seeds are never chosen by label similarity.",
        "- **Flow graphs**: both directions, top-1 decoder cosine, built by `queries.flow_graph.assemble_flow_graph` from the atlas's weights; "
        "each edge kept only above its SAE pair's null p99.9 (random-rotation null, `saes.controls`), residual links also above t_R = 0.5. "
        f"Null p99.9 per pair: {', '.join(f'{k} {v:.3f}' for k, v in out['graph_cuts'].items())}.",
        "- **Strength**: α = per-token ‖Δh‖ / median ‖h‖ at the hook (median over non-sink tokens of the neutral texts, position 0 and "
        f"tokens with ‖h‖ > 5× the median excluded); grid {list(out['settings']['alphas'])}. Clamps raise a feature to the floor whose decoder term has norm α·median.",
        f"- **Prompts**: {s['validation_prompts']} validation and {s['test_prompts']} test neutral instructions (chat mode), "
        f"{s['seeds']} sampling seed(s) per test prompt, {out['settings']['max_new_tokens']} new tokens, T = {out['settings']['temperature']}, top-p {out['settings']['top_p']}.",
        "- **Scores**: concept = P(on-concept) of a logistic regression on MiniLM embeddings + degeneracy statistics, trained on the concept's "
        "train texts against neutral texts and degenerate/repeated texts made of the concept's words; fluency = min(1, 1/perplexity ratio) × "
        "(1 − repeated 3-grams), 0 for degenerate text (perplexity under the unsteered model, ratio to the median unsteered output); "
        "instruction = embedding cosine to the instruction between its null (other instructions: 0) and unsteered outputs (1). "
        "Combined: harmonic mean per generation (AxBench). Side effect: cross-entropy change on benign held-out text.",
        "- **Selection**: α per concept and method = the highest mean validation harmonic mean with degenerate ≤ 10% (else the smallest α, flagged); "
        "the test set is generated once at that α. Intervals: 95% bootstrap over test prompts with concepts resampled as clusters. "
        "`flow_graph_beats_X` is true only when the interval of the median per-concept difference lies above 0.",
        "",
        "## Gate: which concepts the atlas can detect",
        "",
        md_table(
            [
                "concept",
                "source",
                "seed",
                "AUROC train",
                "val",
                "test",
                "graph nodes",
                "graph val",
                "graph test",
                "gated in",
                "classifier acc (test)",
                "lexicon (top 5)",
            ],
            [
                [
                    g["concept"],
                    g["source"],
                    g["seed"],
                    _f(g["auroc_train"]),
                    _f(g["auroc_validation"]),
                    _f(g["auroc_test"]),
                    g["graph_nodes"],
                    _f(g["graph_auroc_validation"]),
                    _f(g["graph_auroc_test"]),
                    "yes" if g["gated_in"] else "no",
                    _f(g["classifier"]["accuracy"]),
                    ", ".join(g["lexicon"][:5]),
                ]
                for g in out["gates"]
            ],
        ),
        "",
        f"{s['concepts_gated_in']} of {s['concepts']} concepts pass the gate; {s['concepts_steered']} were steered"
        + (" (capped by --quick)." if s["concepts_steered"] < s["concepts_gated_in"] else "."),
        "",
        "## Leaderboard (test set, mean over steered concepts)",
        "",
    ]
    rows = []
    for m in METHODS:
        v = s["methods"][m]
        rows.append(
            [
                m,
                _f(v["harmonic_mean"], 3),
                f"[{_f(v['ci'][0], 3)}, {_f(v['ci'][1], 3)}]",
                _f(v["concept"]),
                _f(v["fluency"]),
                _f(v["instruction"]),
                _f(v["degenerate_fraction"]),
                _f(v.get("ppl_ratio_median")),
                _f(v.get("lexicon_rate"), 3),
                _f(v["alpha_median"]),
                _f(v.get("tradeoff_auc_median")),
            ]
        )
    rows.sort(key=lambda r: -float(r[1]) if r[1] != "n/a" else 0.0)
    lines.append(
        md_table(
            [
                "method",
                "harmonic mean",
                "95% CI",
                "concept",
                "fluency",
                "instruction",
                "degenerate",
                "ppl ratio (median)",
                "lexicon rate",
                "α (median)",
                "concept-vs-side-effect AUC (median)",
            ],
            rows,
        )
    )
    lines += [
        "",
        "## Does the flow graph beat the controls? (median over concepts of flow_graph − X, harmonic mean)",
        "",
    ]
    crow = []
    for key, parts in s["comparisons"].items():
        if isinstance(parts, dict) and "median" in parts:
            a, _, o = key.partition("_vs_")
            parts = {o: parts}
            key = f"{a} vs {o}"
        for o, p in parts.items():
            crow.append(
                [key, o, _f(p["median"], 3), f"[{_f(p['low'], 3)}, {_f(p['high'], 3)}]", "yes" if p["beats"] else "no"]
            )
    lines.append(
        md_table(["question", "against", "median difference", "95% CI", "interval above 0"], crow)
        if crow
        else "No concept was steered."
    )
    lines += [
        "",
        "Flags: " + ", ".join(f"`{k}` = {str(s[k]).lower()}" for k in COMPARISONS) + ".",
        "",
        "## The paper's claims, re-tested",
        "",
        "- **Cumulative (graph) vs single layer**: `flow_graph` (every node of the graph at its own hook) against `sae_feature` "
        "(the seed alone, one layer) and `seed_copied` (the seed's direction at every res layer of the span: many layers without the flow); "
        "see the table above. " + _span_note(out),
        "- **Graph-derived suppression vs seeds only**: rescaling r = 0 (the feature's term removed wherever it fires) of the seed alone "
        'vs every node of its graph, on instructions that invite the concept ("Tell me about {concept}." and 3 more) × the test seeds:',
        "",
        _suppression_md(s),
        "",
        f"Concepts steered at the default (flow_graph at its validation α; concept probability above unsteered with the interval excluding 0 "
        f"and median perplexity ratio ≤ {MAX_PPL_RATIO_AT_DEFAULT}): **{s['concepts_steered_at_default']} of {s['concepts_steered']}**.",
        "",
        "## Per concept (test harmonic mean; α chosen on validation in brackets)",
        "",
    ]
    res = out["results"]
    if res:
        head = ["concept", *METHODS]
        prow = []
        for c, per in res.items():
            cells = [c]
            for m in METHODS:
                t = per[m]["test"].summary()["harmonic_mean"]
                a = per[m].get("choice", {}).get("alpha")
                cells.append(
                    f"{t:.2f}" + (f" ({a:g}{'' if per[m]['choice']['admissible'] else '!'})" if a is not None else "")
                )
            prow.append(cells)
        lines.append(md_table(head, prow))
        lines.append("\n`!`: no α kept degenerate outputs ≤ 10% on validation; the smallest α was used.")
        lines += ["", "## Examples (first test prompt, first seed, of the first steered concept)", ""]
        c0 = next(iter(res))
        lines.append(f'Concept **{c0}**, prompt: "{out["test_prompts"][0]}"')
        lines.append("")
        lines.append(
            md_table(
                ["method", "α", "output"],
                [
                    [
                        m,
                        _f(res[c0][m].get("choice", {}).get("alpha")),
                        res[c0][m]["test"].texts[0].replace("\n", " ").replace("|", "/")[:300],
                    ]
                    for m in METHODS
                ],
            )
        )
    lines += [
        "",
        "## Per-concept validation sweeps",
        "",
        "In the JSON: `per_concept.{concept}.{method}.sweep` (every α: scores, degenerate share, side effect).",
    ]
    return "\n".join(lines) + "\n"


def write(out: dict[str, Any], json_path: Path, md_path: Path, command: str) -> dict[str, Any]:
    from experiments.report import _jsonable

    s = summarise(out)
    data = to_json(out, s)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(_jsonable(data), indent=1, default=str) + "\n")
    md_path.write_text(markdown(out, s, command))
    return s


__all__ = ["STEERED_METHODS", "summarise", "write"]
