"""Benchmark of the embedded demo: activation collection, SAE training speed (ours vs sae-lens), the
end-to-end demo per profile, peak memory, and the default atlas's quality — saved to
bench/results/demo.json and demo.md.

    python -m bench.bench_demo                      # micro-benchmarks + tiny profile end to end + default figures
    python -m bench.bench_demo --default-log FILE   # take the default profile's end-to-end time from an
                                                    # `atlas demo` log (its "… Ns this run" line)
    python -m bench.bench_demo --avx2-log FILE      # and the same from a first run under the AVX2 caps
                                                    # (bench.machine.AVX2_EMULATION; its flow and quality
                                                    # are not read: the default atlas is the native run's)

The default profile's quality and timings come from its cached atlas (``$ATLAS_CACHE_DIR/atlases/smollm2-demo``,
i.e. the atlas `atlas demo` built), so the benchmark does not train it a second time. The tiny profile runs
fresh (its own cache folder, atlas name ``bench-demo-tiny``, dropped afterwards). Timings on a machine
shared with other jobs are pessimistic; the output says how loaded the machine was.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness import save_json

ROOT = Path(__file__).resolve().parents[1]

RESULTS = ROOT / "bench" / "results"


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def bench_activations(
    loaded: Any, layers: list[int], seqs: int = 8, seq_len: int = 128, reps: int = 3
) -> dict[str, float]:
    """Tokens/s of one forward with hooks on res/att/mlp of ``layers`` (stopping after the last), vs the whole model."""
    import torch

    from queries.ids import Module
    from steering.hooks import HookPoint, run_capture

    points = [HookPoint(layer, m) for layer in layers for m in (Module.RES, Module.ATT, Module.MLP)]
    ids = torch.randint(100, 20_000, (seqs, seq_len), generator=torch.Generator().manual_seed(0))
    run_capture(loaded, points, ids)  # warm-up
    t = time.perf_counter()
    for _ in range(reps):
        run_capture(loaded, points, ids, stop_early=True)
    early = seqs * seq_len * reps / (time.perf_counter() - t)
    t = time.perf_counter()
    for _ in range(reps):
        run_capture(loaded, points, ids, stop_early=False)
    full = seqs * seq_len * reps / (time.perf_counter() - t)
    return {
        "points": len(points),
        "tokens_per_s_stop_after_last_layer": round(early, 1),
        "tokens_per_s_full_forward": round(full, 1),
    }


def bench_trainers(
    n_saes: int, d_in: int, d_sae: int, k: int, batch: int = 1024, steps: int = 3, rounds: int = 5
) -> dict[str, Any]:
    """Training tokens/s per SAE: our stacked TopK bank (all SAEs in one batched step) vs sae-lens's
    TopKTrainingSAE stepped once per SAE (its forward + backward + Adam), same shapes and batch. ``rounds``
    interleaved rounds of ``steps`` steps each, medians: one round of each was too noisy to rank them
    (0.93× to 1.87× on one quiet machine in two runs the same hour)."""
    import numpy as np
    import torch

    from training.sae import BankTrainer, TopKBank, TopKConfig

    x = torch.randn(n_saes, batch, d_in, generator=torch.Generator().manual_seed(0))
    bank = TopKBank(n_saes, TopKConfig(d_in=d_in, d_sae=d_sae, k=k))
    tr = BankTrainer(bank, 100)

    def ours_step() -> None:
        tr.step(x)

    def timed(step: Callable[[], None]) -> float:
        t = time.perf_counter()
        for _ in range(steps):
            step()
        return batch * steps * n_saes / (time.perf_counter() - t)

    out: dict[str, Any] = {
        "n_saes": n_saes,
        "d_in": d_in,
        "d_sae": d_sae,
        "k": k,
        "batch_tokens": batch,
        "rounds": rounds,
        "steps_per_round": steps,
    }
    theirs_step: Callable[[], None] | None = None
    try:
        from sae_lens import TopKTrainingSAE, TopKTrainingSAEConfig
        from sae_lens.saes.sae import TrainStepInput

        saes = [TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d_in, d_sae=d_sae, k=k)) for _ in range(n_saes)]
        opts = [torch.optim.Adam(s.parameters(), lr=1e-3) for s in saes]

        def sae_lens_step() -> None:
            for i, (s, o) in enumerate(zip(saes, opts)):
                res = s.training_forward_pass(
                    TrainStepInput(
                        sae_in=x[i],
                        coefficients={},
                        dead_neuron_mask=torch.zeros(d_sae, dtype=torch.bool),
                        n_training_steps=0,
                        is_logging_step=False,
                    )
                )
                o.zero_grad()
                res.loss.backward()
                o.step()

        sae_lens_step()  # warm-up
        theirs_step = sae_lens_step
    except Exception as exc:  # noqa: BLE001 - the comparison is informative, not required
        out["sae_lens_error"] = f"{type(exc).__name__}: {exc}"[:300]
    ours_step()  # warm-up
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(timed(ours_step))
        if theirs_step is not None:
            theirs.append(timed(theirs_step))
    out["ours_tokens_per_s_per_sae"] = round(float(np.median(ours)), 1)
    if theirs:
        out["sae_lens_tokens_per_s_per_sae"] = round(float(np.median(theirs)), 1)
        out["speedup_vs_sae_lens"] = round(float(np.median(ours) / np.median(theirs)), 2)
        out["speedup_range_over_rounds"] = [
            round(min(o / t for o, t in zip(ours, theirs)), 2),
            round(max(o / t for o, t in zip(ours, theirs)), 2),
        ]
    return out


def run_tiny_profile() -> dict[str, Any]:
    """The tiny profile end to end in a fresh cache (models and corpus linked when present)."""
    from atlas_cli.demo import run_demo
    from queries.db import Graph

    real = Path(os.environ.get("ATLAS_CACHE_DIR") or Path.home() / ".cache" / "feature-atlas")
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        for sub in ("models", "corpus"):
            if (real / sub).is_dir():
                (cache / sub).symlink_to(real / sub)
        old = os.environ.get("ATLAS_CACHE_DIR")
        os.environ["ATLAS_CACHE_DIR"] = str(cache)
        try:
            t = time.perf_counter()
            rep = run_demo("tiny", echo=lambda _: None, progress=False, atlas="bench-demo-tiny")
            first = time.perf_counter() - t
            t = time.perf_counter()
            run_demo("tiny", echo=lambda _: None, progress=False, atlas="bench-demo-tiny")
            second = time.perf_counter() - t
        finally:
            if old is None:
                os.environ.pop("ATLAS_CACHE_DIR", None)
            else:
                os.environ["ATLAS_CACHE_DIR"] = old
            with Graph() as g:
                g.write(
                    "MATCH (n) WHERE n.atlas = $a OR (n:Atlas AND n.name = $a) DETACH DELETE n",
                    {"a": "bench-demo-tiny"},
                    timeout=300,
                )
    return {
        "first_run_s": round(first, 1),
        "second_run_s": round(second, 1),
        "summary": rep.metrics["summary"],
        "timings": rep.timings,
    }


def robust_explained_variance(
    loaded: Any, atlas_dir: Path, layers: list[int], n_seqs: int = 32, seq_len: int = 128
) -> list[dict[str, Any]]:
    """EV of the saved SAEs on held-out tokens, also with the 1% largest-norm tokens left out.

    Why: in SmolLM2's later layers a few tokens (newlines, whitespace) carry activations so large that they
    hold most of the variance (≈ 99% at layer 11), and the standard EV then mostly measures those tokens.
    """
    import numpy as np
    import torch

    from queries.ids import Module
    from saes.saelens_format import load_sae_dir
    from steering.hooks import HookPoint, run_capture
    from training.corpus import ensure_default_corpus, load_split, pack_sequences
    from training.metrics import TrimmedVariance

    split = load_split(ensure_default_corpus())
    seqs = [
        s for s, _ in zip(pack_sequences(loaded.tokenizer, split.held_out, seq_len, shuffle_seed=None), range(n_seqs))
    ]
    ids = torch.tensor([s[0] for s in seqs])
    points = [HookPoint(layer, m) for layer in layers for m in (Module.RES, Module.ATT, Module.MLP)]
    acts: dict[Any, list[torch.Tensor]] = {p: [] for p in points}
    for i in range(0, len(ids), 8):
        got = run_capture(loaded, points, ids[i : i + 8])
        for p in points:
            acts[p].append(got[p][:, 1:].reshape(-1, got[p].shape[-1]))
    out = []
    for p in points:
        x = torch.cat(acts[p]).numpy().astype(np.float64)
        sae = load_sae_dir(atlas_dir / "saes" / f"{p.layer}-{p.module.value}")
        z = sae.encode(x.astype(np.float32)).astype(np.float64)
        recon = z @ sae.W_dec + sae.b_dec
        ev_all = 1 - ((x - recon) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
        tv = TrimmedVariance(1, max_tokens=len(x))  # the trainer's own definition (training.metrics)
        tv.update(torch.from_numpy(x)[None], torch.from_numpy(recon)[None])
        trimmed = tv.results()[0]
        out.append(
            {
                "sae": str(p),
                "tokens": len(x),
                "ev": round(float(ev_all), 4),
                "ev_without_top1pct_tokens": round(trimmed["explained_variance_without_outliers"], 4),
                "variance_share_of_top1pct_tokens": round(trimmed["outlier_variance_share"], 4),
            }
        )
    return out


def default_profile_figures(default_log: Path | None) -> dict[str, Any]:
    from atlas_cli.demo import profile_spec
    from training.settings import TrainingSettings

    spec = profile_spec("default")
    mpath = TrainingSettings().atlases_dir / spec.atlas / "metrics.json"
    if not mpath.is_file():
        return {"error": f"{mpath} does not exist: run `atlas demo` first"}
    metrics = json.loads(mpath.read_text())
    out: dict[str, Any] = {
        "atlas": spec.atlas,
        "layers": spec.layers,
        "d_sae": spec.d_sae,
        "k": spec.k,
        "module_k": spec.module_k,
        "token_budget": spec.token_budget,
        "epochs": spec.epochs,
        "train_batch_tokens": spec.train_batch_tokens,
        "unique_train_tokens": metrics.get("unique_train_tokens"),
        "summary": metrics["summary"],
        "saes": [
            {
                k: m.get(k)
                for k in (
                    "layer",
                    "module",
                    "explained_variance",
                    "explained_variance_without_outliers",
                    "l0",
                    "dead_fraction",
                )
            }
            for m in metrics["saes"]
        ],
        "train_timings": metrics["timings"],
        "forward_tokens_per_s": metrics.get("forward_tokens_per_s"),
        "train_tokens_per_s_per_sae": metrics.get("train_tokens_per_s_per_sae"),
        "train_peak_rss_mib": metrics.get("peak_rss_mib"),
        "spec_hash": metrics["spec_hash"],
    }
    total = run_seconds(default_log)
    first_run = TrainingSettings().atlases_dir / spec.atlas / "demo_first_run.json"
    if total is None and first_run.is_file():
        total = float(json.loads(first_run.read_text()).get("total_s", 0)) or None
    out["end_to_end_first_run_s"] = total
    return out


def run_seconds(log: Path | None) -> float | None:
    """The end-to-end seconds an `atlas demo` log reports (its last "· Ns this run" line), or None."""
    if not (log and log.is_file()):
        return None
    m = re.findall(r"· (\d+)s this run", log.read_text(errors="replace"))
    return float(m[-1]) if m else None


def flow_figures(atlas: str, layers: list[int]) -> dict[str, Any]:
    """Flow of the ingested default atlas (queries.sae_metrics.flow_shares): per layer, and pooled over ``layers``
    — the share of res features with s_res ≥ 0.5 (of those with a res(L-1) SAE) and with a module score above
    that module pair's null 99.9th percentile, each with its denominator."""
    from queries.db import Graph
    from queries.errors import DatabaseUnavailable
    from queries.sae_metrics import flow_shares, pooled_flow

    try:
        with Graph() as graph:
            graph.verify()
            rows = flow_shares(graph, atlas)
    except DatabaseUnavailable as exc:
        return {"flow_error": f"{exc} (start Neo4j and ingest the default atlas: `atlas demo`)"}
    pooled = pooled_flow(rows, layers)
    tag = f"layers_{layers[0]}_{layers[-1]}"
    return {
        "flow_per_layer": rows,
        f"flow_{tag}": pooled,
        f"share_s_res_ge_0_5_{tag}": pooled["share_s_res_ge_cut"],
        f"share_module_above_null_{tag}": pooled["share_module_above_null"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--default-log", type=Path, default=None, help="log of the `atlas demo` run that built the default atlas"
    )
    ap.add_argument("--skip-tiny", action="store_true", help="do not run the tiny profile end to end")
    ap.add_argument(
        "--avx2-log",
        type=Path,
        default=None,
        help="log of a first `atlas demo` run under the AVX2 caps of bench.machine.AVX2_EMULATION",
    )
    args = ap.parse_args()
    for name, log in (("--default-log", args.default_log), ("--avx2-log", args.avx2_log)):
        if log is not None and not log.is_file():
            raise SystemExit(f"{name} {log}: no such file (give the log of an `atlas demo` run, bench/first_run.sh)")

    import torch

    from atlas_cli.demo import profile_spec
    from steering.model import load_model
    from training.train import machine_description, peak_rss_mib

    load_before = load_average()
    machine = machine_description()
    machine["load_average_at_start"] = load_before
    # Judge from the load itself rather than assume: more runnable work than cores means other jobs compete.
    busy = load_before[0] > (os.cpu_count() or 1) + 0.5
    machine["shared"] = (
        f"yes: 1-min load {load_before[0]:.1f} on {os.cpu_count()} cores at start; timings are pessimistic"
        if busy
        else f"no other heavy job (1-min load {load_before[0]:.1f} on {os.cpu_count()} cores at start)"
    )
    results: dict[str, Any] = {"machine": machine, "torch_threads": torch.get_num_threads()}
    from bench.machine import cpu_model_and_flags

    results["cpu"], results["cpu_flags"] = cpu_model_and_flags()
    # An AVX2-class run on a newer CPU restricts torch/MKL/oneDNN with these; recorded so a figure says what ran.
    results["isa_limits"] = {
        k: os.environ[k]
        for k in ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA")
        if k in os.environ
    }

    spec = profile_spec("default")
    loaded = load_model(None)
    print("activation collection …", flush=True)
    results["activations"] = bench_activations(loaded, spec.layers)
    print(json.dumps(results["activations"]), flush=True)
    print("trainer step speed (ours vs sae-lens) …", flush=True)
    results["trainers"] = bench_trainers(len(spec.layers) * 3, loaded.d_model, spec.d_sae, spec.k)
    print(json.dumps(results["trainers"]), flush=True)
    if not args.skip_tiny:
        print("tiny profile end to end …", flush=True)
        results["tiny_profile"] = run_tiny_profile()
        print(json.dumps(results["tiny_profile"]), flush=True)
    results["default_profile"] = default_profile_figures(args.default_log)
    if "error" not in results["default_profile"]:
        from training.settings import TrainingSettings

        print("robust EV of the default atlas …", flush=True)
        results["default_profile"]["robust_ev"] = robust_explained_variance(
            loaded, TrainingSettings().atlases_dir / spec.atlas, spec.layers
        )
    d = results["default_profile"]
    summary = d.get("summary", {})
    results["default_profile_s"] = d.get("end_to_end_first_run_s")
    if args.avx2_log:
        from bench.machine import AVX2_EMULATION

        results["default_profile_s_avx2"] = run_seconds(args.avx2_log)
        results["default_profile_s_avx2_note"] = (
            "first run on this machine with its vector ISA capped to AVX2 ("
            + " ".join(f"{k}={v}" for k, v in AVX2_EMULATION.items())
            + "): same cores, caches and memory bandwidth as the native run, so an emulation of an AVX2-only CPU, "
            "not a measurement on one"
        )
    results["min_explained_variance"] = summary.get("min_explained_variance")
    results["min_explained_variance_without_outliers"] = summary.get("min_explained_variance_without_outliers")
    results.update(flow_figures(spec.atlas, [9, 10, 11]))
    results["max_l0"] = summary.get("max_l0")
    results["max_dead_fraction"] = summary.get("max_dead_fraction")
    if d.get("saes"):
        from training.metrics import quality_bar, summarise

        bar = quality_bar(summarise([{k: v for k, v in m.items() if v is not None} for m in d["saes"]]))
        results["quality_bar_met"], results["quality_bar"] = bar.met, bar.line()
    else:
        results["quality_bar_met"], results["quality_bar"] = False, "not measured (no default atlas)"
    results["peak_rss_mib_bench"] = round(peak_rss_mib(), 1)
    results["load_average_at_end"] = load_average()

    RESULTS.mkdir(parents=True, exist_ok=True)
    save_json((RESULTS / "demo.json"), results, indent=2)
    (RESULTS / "demo.md").write_text(render_md(results))
    print(render_md(results))


def render_md(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        "# Demo benchmark (bench/bench_demo.py)",
        "",
        f"Machine: {m['processor']}, {m['cpu_count']} cores, torch {m['torch']} ({r['torch_threads']} threads), CUDA {m['cuda']}; "
        f"load average {m['load_average_at_start']} at start, {r['load_average_at_end']} at end. "
        f"**Shared**: {m['shared']}.",
        "",
        "## Default profile (the `smollm2-demo` atlas)",
        "",
    ]
    d = r.get("default_profile", {})
    if "flow_error" in r:
        lines += [f"Flow: not measured ({r['flow_error']}).", ""]
    elif r.get("flow_per_layer"):
        pooled = r["flow_layers_9_11"]
        lines += [
            f"**Flow, layers 9–11** (n = {pooled['n_with_s_res']:,} res features with a res(L-1) SAE): "
            f"**{pooled['share_s_res_ge_cut']:.1%}** with s_res ≥ 0.5; **{pooled['share_module_above_null']:.1%}** "
            "with max(s_att, s_mlp) above that module pair's null 99.9th percentile.",
            "",
            "| layer | n | s_res ≥ 0.5 | median s_res | null median / p99.9 | ceiling median (≥ 0.5) | module > null p99.9 |",
            "|---|---|---|---|---|---|---|",
        ]
        for x in r["flow_per_layer"]:
            if not x["n_with_s_res"]:
                lines.append(
                    f"| {x['layer']} | {x['n']} | no res(L-1) SAE | | | | {x['n_module_above_null'] / x['n']:.1%} |"
                )
                continue
            ceiling = (
                f"{x['ceiling_median']:.3f} ({x['ceiling_share_ge_half']:.1%})"
                if x["ceiling_median"] is not None
                else "not trained"
            )
            lines.append(
                f"| {x['layer']} | {x['n']} | {x['n_s_res_ge_cut'] / x['n_with_s_res']:.1%} | {x['median_s_res']:.3f} | "
                f"{x['res_null_median']:.3f} / {x['res_null_p999']:.3f} | {ceiling} | {x['n_module_above_null'] / x['n']:.1%} |"
            )
        lines.append("")
    if "error" in d:
        lines.append(d["error"])
    else:
        lines += [
            f"Layers {d['layers'][0]}–{d['layers'][-1]} × res/att/mlp, {d['d_sae']} latents, TopK k={d['k']}"
            + "".join(f", {m} k={k}" for m, k in (d.get("module_k") or {}).items())
            + f", {d['token_budget']:,} training tokens.",
            "",
            f"- end-to-end first run: **{r['default_profile_s']} s**"
            + (
                " (budget 600 s where bf16 instructions exist, 900 s on an AVX2-only 2-core CPU)"
                if r["default_profile_s"]
                else ""
            ),
            *(
                [
                    f"- end-to-end first run under the AVX2 caps: **{r['default_profile_s_avx2']} s** ({r['default_profile_s_avx2_note']})"
                ]
                if r.get("default_profile_s_avx2") is not None
                else []
            ),
            f"- {r['quality_bar']} (L0 = k = {d['k']} by construction of TopK, not judged)",
            f"- CPU: {r.get('cpu')} (SIMD: {', '.join(r.get('cpu_flags', []))}); ISA limits set: {r.get('isa_limits') or 'none'}",
            f"- epochs {d.get('epochs', 1)} over {d.get('unique_train_tokens', d['token_budget']):,} unique tokens, "
            f"{d.get('train_batch_tokens')} tokens per step",
            f"- training timings: {d['train_timings']}",
            f"- activation collection during training: {d['forward_tokens_per_s']} tok/s; SAE steps: {d['train_tokens_per_s_per_sae']} tok/s per SAE; "
            f"peak RSS {d['train_peak_rss_mib']} MiB",
            "",
            "| SAE | EV (held-out) | EV without the 1% largest-norm tokens | L0 | dead |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {s['layer']}-{s['module']} | {s['explained_variance']:.3f} | "
            f"{'n/a' if s.get('explained_variance_without_outliers') is None else format(s['explained_variance_without_outliers'], '.3f')} "
            f"| {s['l0']:.1f} | {s['dead_fraction']:.3f} |"
            for s in d["saes"]
        ]
        if d.get("robust_ev"):
            lines += [
                "",
                "EV re-measured on 32 held-out sequences, also without the 1% tokens of largest norm (a few newline/whitespace "
                "tokens carry most of the variance in later layers, which inflates the standard EV there):",
                "",
                "| SAE | EV | EV without top-1% tokens | variance share of top-1% tokens |",
                "|---|---|---|---|",
            ]
            lines += [
                f"| {e['sae']} | {e['ev']:.3f} | {e['ev_without_top1pct_tokens']:.3f} | {e['variance_share_of_top1pct_tokens']:.3f} |"
                for e in d["robust_ev"]
            ]
    a, t = r["activations"], r["trainers"]
    lines += [
        "",
        "## Micro-benchmarks",
        "",
        f"- activation collection, {a['points']} hook points: {a['tokens_per_s_stop_after_last_layer']} tok/s stopping after the last layer needed, "
        f"{a['tokens_per_s_full_forward']} tok/s through all layers",
        f"- SAE training ({t['n_saes']} SAEs, {t['d_in']}→{t['d_sae']}, k={t['k']}, {t['batch_tokens']} tokens/step): ours "
        f"{t['ours_tokens_per_s_per_sae']} tok/s per SAE"
        + (
            f", sae-lens TopKTrainingSAE {t['sae_lens_tokens_per_s_per_sae']} tok/s per SAE (medians of {t.get('rounds', 1)} "
            f"interleaved rounds; ours is {t['speedup_vs_sae_lens']}× as fast, {t.get('speedup_range_over_rounds')} over rounds)"
            if "sae_lens_tokens_per_s_per_sae" in t
            else f" (sae-lens: {t.get('sae_lens_error')})"
        ),
    ]
    if "tiny_profile" in r:
        tp = r["tiny_profile"]
        lines += [
            f"- tiny profile end to end: first run {tp['first_run_s']} s, second run {tp['second_run_s']} s "
            f"(min EV {tp['summary']['min_explained_variance']:.3f} — 8k tokens, a smoke test, not an atlas)"
        ]
    lines.append(f"- peak RSS of the benchmark process: {r['peak_rss_mib_bench']} MiB")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
