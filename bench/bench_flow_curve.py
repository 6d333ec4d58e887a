"""How flow and the seed ceiling grow with training: the curve behind the default profile's recipe (issue #18).

For one residual pair of SmolLM2 (res(L-1) → res(L), default L = 10) and a second seed of res(L), SAEs are
trained with the default profile's recipe on the same cached activations for growing numbers of training
tokens (epochs over the profile's unique tokens, and optionally more unique tokens), each budget a separate
run with its own learning-rate schedule. Reported per budget:
- median top-1 ``s_res`` (res(L) features against res(L-1)) and the share ≥ 0.5;
- the seed ceiling: median top-1 cosine of res(L) against its second seed, and the share ≥ 0.5;
- the null: the same statistics against a randomly rotated res(L-1) decoder (saes.controls);
- held-out EV (also without the 1% largest-norm tokens) and the dead fraction.
The unit of the shares is the feature (n = d_sae per SAE); each run is one training run (no repeats: a
second seed of the whole curve is the spread to expect, and costs as much again).

    python -m bench.bench_flow_curve                          # default recipe, budgets 1/2/4/8 epochs
    python -m bench.bench_flow_curve --unique 200000 --epochs 1,2,4
Writes bench/results/flow_curve.json and .md (CPU model and flags recorded).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from bench.harness import save_json

ROOT = Path(__file__).resolve().parents[1]

RESULTS = ROOT / "bench" / "results"


def collect(layer: int, unique: int, heldout: int, spec: Any) -> tuple[Any, Any, float]:
    """Activations of res(layer-1) and res(layer): training ``[2, unique, d]`` (bf16) and held-out (fp32)."""
    import torch

    from queries.ids import Module
    from steering.hooks import HookPoint
    from steering.model import load_model
    from training.activations import forward_batches
    from training.corpus import load_split, resolve_corpus
    from training.loop import ActivationCache

    loaded = load_model(None)
    points = [HookPoint(layer - 1, Module.RES), HookPoint(layer, Module.RES)]
    split = load_split(resolve_corpus(spec.corpus), held_out_fraction=spec.held_out_fraction)
    per_seq = spec.seq_len - 1
    cache = ActivationCache(2, -(-unique // per_seq) * per_seq, loaded.d_model)
    t = time.perf_counter()
    for b in forward_batches(
        loaded,
        points,
        split.train,
        seq_len=spec.seq_len,
        seqs_per_batch=spec.seqs_per_batch,
        shuffle_seed=spec.seed,
        max_sequences=-(-unique // per_seq),
    ):
        cache.append(b.acts)
    forward_s = time.perf_counter() - t
    held = [
        b.acts
        for b in forward_batches(
            loaded,
            points,
            split.held_out,
            seq_len=spec.seq_len,
            seqs_per_batch=spec.seqs_per_batch,
            shuffle_seed=None,
            max_sequences=-(-heldout // per_seq),
        )
    ]
    return cache, torch.cat(held, 1), forward_s


def train_and_score(cache: Any, held: Any, spec: Any, epochs: float) -> dict[str, Any]:
    """Train res(L-1), res(L) and res(L)'s second seed for ``epochs`` passes; score flow, ceiling and null."""
    import numpy as np
    import torch

    from saes.controls import null_top1, summarise_scores, top1_scores
    from training.loop import BankLayout, total_steps
    from training.sae import BankTrainer, TopKBank, TopKConfig

    layout = BankLayout.with_seeds(2, [1], 2)  # res(L-1), res(L), res(L) seed copy (own init and token order)
    cfg = TopKConfig(
        d_in=cache.data.shape[-1],
        d_sae=spec.d_sae,
        k=spec.k,
        lr=spec.lr,
        dead_after_tokens=spec.dead_after_tokens,
        seed=spec.seed,
    )
    torch.manual_seed(spec.seed)
    bank = TopKBank(layout.n, cfg)
    steps = total_steps(cache.size, spec.train_batch_tokens, epochs)
    trainer = BankTrainer(bank, steps)
    t = time.perf_counter()
    epoch = 1
    while trainer.step_no < steps:
        for x in cache.epoch_batches(layout, spec.train_batch_tokens, seed=spec.seed, epoch=epoch):
            if trainer.step_no >= steps:
                break
            trainer.step(x)
        epoch += 1
    train_s = time.perf_counter() - t
    w = bank.W_dec.detach().numpy()
    s_res = top1_scores(w[1], w[0])
    ceiling = top1_scores(w[1], w[2])
    null = summarise_scores(null_top1(w[1], w[0], rows=4096, seed=1))
    with torch.no_grad():
        x = layout.gather(held, [None, None])
        recon, vals, idx = bank.reconstruct_raw(x)
        err = (x - recon).pow(2).sum(-1).double()
        cen = (x - x.mean(1, keepdim=True)).pow(2).sum(-1).double()
        keep = cen <= torch.quantile(cen, 0.99, dim=1, keepdim=True)
        fired = torch.zeros(layout.n, spec.d_sae).scatter_add_(
            1, idx.reshape(layout.n, -1), (vals > 0).float().reshape(layout.n, -1)
        )
    return {
        "epochs": epochs,
        "unique_tokens": cache.size,
        "training_tokens": steps * spec.train_batch_tokens,
        "train_s": round(train_s, 1),
        "n_features": spec.d_sae,
        "median_s_res": round(float(np.median(s_res)), 4),
        "share_s_res_ge_0_5": round(float((s_res >= 0.5).mean()), 4),
        "ceiling_median": round(float(np.median(ceiling)), 4),
        "ceiling_share_ge_0_5": round(float((ceiling >= 0.5).mean()), 4),
        "null_median": round(null.median, 4),
        "null_p999": round(null.p999, 4),
        "null_n": null.n,
        "explained_variance": [round(float(1 - err[i].sum() / cen[i].sum()), 4) for i in range(layout.n)],
        "explained_variance_without_outliers": [
            round(float(1 - err[i][keep[i]].sum() / cen[i][keep[i]].sum()), 4) for i in range(layout.n)
        ],
        "dead_fraction": [round(float((fired[i] == 0).float().mean()), 4) for i in range(layout.n)],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layer", type=int, default=10, help="res(layer) against res(layer-1)")
    ap.add_argument("--unique", type=int, default=0, help="unique training tokens (default: the profile's budget)")
    ap.add_argument("--epochs", default="1,2,4,8", help="training budgets as epochs over the unique tokens")
    ap.add_argument("--heldout", type=int, default=16_384)
    ap.add_argument("--out", default="flow_curve")
    args = ap.parse_args()

    from atlas_cli.demo import profile_spec
    from bench.machine import machine

    spec = profile_spec("default")
    unique = args.unique or spec.token_budget
    mach = machine()
    cache, held, forward_s = collect(args.layer, unique, args.heldout, spec)
    runs = []
    for e in [float(x) for x in args.epochs.split(",")]:
        r = train_and_score(cache, held, spec, e)
        print(json.dumps(r), flush=True)
        runs.append(r)
    result = {
        "machine": mach,
        "recipe": {k: getattr(spec, k) for k in ("d_sae", "k", "lr", "train_batch_tokens", "seq_len", "corpus")},
        "pair": f"res({args.layer - 1}) → res({args.layer}), ceiling: res({args.layer}) seed {spec.seed} vs seed {spec.seed + 1}",
        "forward_s": round(forward_s, 1),
        "runs": runs,
        "load_average_at_end": [round(x, 2) for x in __import__("os").getloadavg()],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    save_json((RESULTS / f"{args.out}.json"), result, indent=2)
    (RESULTS / f"{args.out}.md").write_text(render_md(result))
    print(render_md(result))


def render_md(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        f"# Flow and seed ceiling against training tokens ({r['pair']})",
        "",
        f"CPU: {m['cpu']} ({', '.join(f for f in m['cpu_flags'] if f.startswith(('avx512_bf16', 'avx512f', 'avx2', 'amx')))}), "
        f"{m['cores']} cores, load at start {m['loadavg_1_5_15']}. Recipe: {r['recipe']}.",
        "",
        "Each row is one training run of three SAEs on the same cached activations (n = d_sae features per SAE; "
        "no repeats). Null: top-1 cosine against a randomly rotated res(L-1) decoder.",
        "",
        "| unique tokens | training tokens | median s_res | s_res ≥ 0.5 | ceiling median | ceiling ≥ 0.5 | null median / p99.9 | EV res(L) (w/o top 1%) | train s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for x in r["runs"]:
        lines.append(
            f"| {x['unique_tokens']:,} | {x['training_tokens']:,} | {x['median_s_res']:.3f} | {x['share_s_res_ge_0_5']:.1%} | "
            f"{x['ceiling_median']:.3f} | {x['ceiling_share_ge_0_5']:.1%} | {x['null_median']:.3f} / {x['null_p999']:.3f} | "
            f"{x['explained_variance'][1]:.3f} ({x['explained_variance_without_outliers'][1]:.3f}) | {x['train_s']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
