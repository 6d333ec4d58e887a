"""GPU benchmark: Gemma-shaped matching and the demo's ``full`` training profile on one CUDA GPU.

    python -m bench.bench_gpu --out bench/results            # needs torch with CUDA; CI never runs it

Two parts, each with its baseline in the same run:

1. **Matching** of a Gemma-2-2B-shaped atlas (26 layers × res/att/mlp × 16,384 features, d 2,304; the
   77 pairs ingest matches: 25 res–res both ways, 26 att→res, 26 mlp→res) through ingest's own
   functions (:func:`ingest.matching.topk_both_ways`, :func:`ingest.matching.topk_search`). Where
   faiss-gpu is not installed, ``topk_search`` runs torch's exact fp32 GEMM + top-k on the GPU. The floor
   is the same run's bare fp32 GEMM of every pair on the device; exactness is checked against a float64
   reference on sampled rows.
2. **Training** throughput of the ``full`` demo profile's shapes (30 layers × 3 hook points, d_sae 8,192,
   k 64, 2,048-token steps, 32 × 256-token forward batches): SmolLM2-135M's architecture with random
   weights (the real weights cannot travel to a GPU machine that reaches no hub; throughput depends on
   shapes, not values), forward alone, SAE steps alone, and ``train_atlas`` end to end on a token slice.

Decoders are random unit rows: GPU matching has no data-dependent shortcut, so its time does not depend
on them (the CPU pre-filter's does, which is why this benchmark says nothing about it).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

from bench.harness import save_json

DEV = "cuda"  # --smoke runs every code path on the CPU at tiny shapes (a check of the script, no figures)


def _sync() -> None:
    import torch

    if DEV == "cuda":
        torch.cuda.synchronize()


def gpu_info() -> dict[str, object]:
    import torch

    if DEV != "cuda":
        return {"gpu_name": "none (smoke run on the CPU)", "torch": torch.__version__}
    p = torch.cuda.get_device_properties(0)
    return {
        "gpu_name": torch.cuda.get_device_name(0),
        "gpu_memory_gib": round(p.total_memory / 2**30, 1),
        "sm_count": p.multi_processor_count,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "host_cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }


def bench_matching(n_layers: int, d_sae: int, d_model: int, k: int) -> dict[str, object]:
    import numpy as np
    import torch

    from ingest.matching import faiss_gpu_available, topk_both_ways, topk_search

    g = torch.Generator(device=DEV).manual_seed(0)

    def decoder() -> np.ndarray:
        w = torch.randn(d_sae, d_model, device=DEV, generator=g)
        return torch.nn.functional.normalize(w, dim=1).cpu().numpy()

    t0 = time.perf_counter()
    dec = {(layer, m): decoder() for layer in range(n_layers) for m in ("res", "att", "mlp")}
    gen_s = time.perf_counter() - t0

    # Warm-up: CUDA context, cuBLAS handles, allocator.
    topk_search(dec[(0, "res")][:4096], dec[(0, "att")], k, backend="torch")
    _sync()

    t0 = time.perf_counter()
    pair_times: list[float] = []
    n_pairs = 0
    for layer in range(n_layers):
        res = dec[(layer, "res")]
        if layer > 0:
            t = time.perf_counter()
            topk_both_ways(res, dec[(layer - 1, "res")], k)
            pair_times.append(time.perf_counter() - t)
            n_pairs += 1
        for mod in ("att", "mlp"):
            t = time.perf_counter()
            topk_search(res, dec[(layer, mod)], k)  # ingest's default backend: faiss-gpu, else torch on the GPU
            pair_times.append(time.perf_counter() - t)
            n_pairs += 1
    matching_s = time.perf_counter() - t0

    # Floor: the bare fp32 GEMM of each pair, operands already on the device (what matching cannot beat).
    a = torch.from_numpy(dec[(1, "res")]).to(DEV)
    b = torch.from_numpy(dec[(0, "res")]).to(DEV)
    for _ in range(3):
        a @ b.T
    _sync()
    reps = []
    for _ in range(10):
        t = time.perf_counter()
        a @ b.T
        _sync()
        reps.append(time.perf_counter() - t)
    gemm_pair_s = statistics.median(reps)
    flops = 2 * d_sae * d_sae * d_model

    # Exactness: sampled rows against float64 on the CPU.
    rows = np.random.default_rng(0).choice(d_sae, min(256, d_sae), replace=False)
    sims, idx = topk_search(dec[(1, "res")][rows], dec[(1, "mlp")], k)
    ref = dec[(1, "res")][rows].astype(np.float64) @ dec[(1, "mlp")].astype(np.float64).T
    ref_idx = np.argsort(-ref, axis=1)[:, :k]
    ref_sims = np.take_along_axis(ref, ref_idx, axis=1)
    max_sim_err = float(np.abs(sims - ref_sims).max())
    idx_agree = float((idx == ref_idx).mean())
    return {
        "shape": {"layers": n_layers, "d_sae": d_sae, "d_model": d_model, "k": k, "pairs": n_pairs},
        "faiss_gpu": faiss_gpu_available(),
        "path": "faiss-gpu IndexFlatIP"
        if faiss_gpu_available()
        else "torch fp32 GEMM + top-k on the GPU (faiss-gpu not installed)",
        "decoder_generation_s": round(gen_s, 2),
        "gemma_matching_s": round(matching_s, 2),
        "pair_s_median": round(statistics.median(pair_times), 4),
        "pair_s_max": round(max(pair_times), 4),
        "gemm_floor_pair_s": round(gemm_pair_s, 5),
        "gemm_tflops": round(flops / gemm_pair_s / 1e12, 1),
        # res–res pairs do both directions from one GEMM, so the floor is one GEMM per pair either way.
        "gemm_floor_all_pairs_s": round(gemm_pair_s * n_pairs, 3),
        "matching_over_gemm_floor": round(matching_s / (gemm_pair_s * n_pairs), 2),
        "exactness_rows": len(rows),
        "max_abs_sim_error_vs_float64": max_sim_err,
        "topk_index_agreement_vs_float64": idx_agree,
    }


def _smollm2_shaped_random() -> object:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from steering.model import wrap_model
    from tests.factories import byte_tokenizer  # the unit tests' tokenizer: real weights cannot reach the GPU machine

    tok = byte_tokenizer()
    # SmolLM2-135M's architecture (its config.json): 30 layers, d 576, 9 heads / 3 KV heads, MLP 1,536.
    cfg = LlamaConfig(
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=8192,
        rope_theta=100000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(torch.float32)
    return wrap_model(model, tok, name="smollm2-135m-shaped-random", source="random", device=DEV)


def _corpus(path: Path, n_bytes: int) -> Path:
    """Real prose and code for the byte tokenizer: this interpreter's own standard library sources."""
    import sysconfig

    out, size = [], 0
    for f in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        try:
            text = f.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        out.append(text)
        size += len(text)
        if size >= n_bytes:
            break
    path.write_text("\n\n".join(out), encoding="utf-8")
    return path


def bench_training(train_tokens: int, smoke: bool = False) -> dict[str, object]:
    import torch

    from atlas_cli.demo import profile_spec
    from queries.ids import Module
    from steering.hooks import HookPoint
    from training.activations import forward_batches
    from training.corpus import load_split
    from training.sae import BankTrainer, TopKBank, TopKConfig
    from training.train import train_atlas

    full = profile_spec("full")
    if smoke:
        full.layers, full.d_sae, full.seqs_per_batch, full.train_batch_tokens = [0, 1], 256, 2, 256
    loaded = _smollm2_shaped_random()
    points = [HookPoint(layer, Module(m)) for layer in full.layers for m in full.modules]
    n = len(points)
    work = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    corpus = _corpus(work / "corpus.txt", int(train_tokens * 1.2) + 400_000)
    split = load_split(corpus, held_out_fraction=full.held_out_fraction, text_field=full.text_field)

    # Forward alone: all 90 hook points captured, activations kept on the device.
    fb = forward_batches(
        loaded,
        points,
        split.train,
        seq_len=full.seq_len,
        seqs_per_batch=full.seqs_per_batch,
        shuffle_seed=0,
        max_sequences=full.seqs_per_batch * 12,
        keep_on_device=True,
    )
    next(fb)
    _sync()
    t, toks = time.perf_counter(), 0
    for b in fb:
        toks += b.acts.shape[1]
    _sync()
    fwd_tok_s = toks / (time.perf_counter() - t)

    # SAE steps alone: the bank of 90 TopK SAEs on 2,048-token steps.
    cfg = TopKConfig(
        d_in=loaded.d_model, d_sae=full.d_sae, k=full.k, lr=full.lr, dead_after_tokens=full.dead_after_tokens, seed=0
    )
    x = torch.randn(n, full.train_batch_tokens, loaded.d_model, device=DEV)
    steps = 3 if smoke else 30
    step_times: dict[str, list[float]] = {"fp32": [], "tf32": []}
    trainers = {name: BankTrainer(TopKBank(n, cfg).to(DEV), 1000, tf32=name == "tf32") for name in step_times}
    for tr in trainers.values():
        for _ in range(3):
            tr.step(x)
    for _ in range(3):  # interleaved A/B rounds: clocks and neighbours affect both alike
        for name, tr in trainers.items():
            _sync()
            t = time.perf_counter()
            for _ in range(steps // 3):
                tr.step(x)
            _sync()
            step_times[name].append((time.perf_counter() - t) / (steps // 3))
    step_fp32 = statistics.median(step_times["fp32"])
    step_s = statistics.median(step_times["tf32"])
    del trainers, x
    if DEV == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()

    # End to end on a slice of the full profile's token budget (same shapes, fewer tokens).
    spec = full
    spec.atlas, spec.corpus, spec.token_budget, spec.heldout_tokens = (
        "bench-gpu-full",
        str(corpus),
        train_tokens,
        32_768,
    )
    spec.device = DEV
    t = time.perf_counter()
    result = train_atlas(spec, work / "atlas", loaded=loaded, progress=False, resume=False, force=True)
    e2e_s = time.perf_counter() - t
    m = result.metrics
    tm = m["timings"]
    # Projection to the profile's budget: the training loop scales with tokens; held-out pass and writing don't.
    per_token = tm["train_total_s"] / max(1, m["tokens_trained"])
    heldout_scale = profile_spec("full").heldout_tokens / spec.heldout_tokens
    fixed_s = tm["heldout_s"] * heldout_scale + tm["write_s"] + tm["corpus_s"]
    return {
        "model": "SmolLM2-135M architecture, random weights (byte tokenizer; lm_head not run)",
        "profile": "full",
        "hook_points": n,
        "d_sae": full.d_sae,
        "k": full.k,
        "train_batch_tokens": full.train_batch_tokens,
        "seq_len": full.seq_len,
        "seqs_per_batch": full.seqs_per_batch,
        "forward_tokens_per_s": round(fwd_tok_s),
        "sae_step_s_fp32": round(step_fp32, 4),
        "sae_step_s": round(step_s, 4),
        "sae_step_tf32_speedup": round(step_fp32 / step_s, 2),
        "sae_tokens_per_s_all_90": round(full.train_batch_tokens / step_s),
        "sae_tokens_per_s_per_sae": round(full.train_batch_tokens * n / step_s),
        "e2e_train_tokens": m["tokens_trained"],
        "e2e_s": round(e2e_s, 1),
        "e2e_timings": m["timings"],
        "e2e_min_explained_variance": m["summary"].get("min_explained_variance"),
        "projected_full_profile_s": round(per_token * spec_budget() + fixed_s, 0),
        "projection": "train_total_s per token × the full profile's token budget + held-out pass scaled to the "
        "profile's held-out tokens + writing (fixed)",
        "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1) if DEV == "cuda" else None,
    }


def spec_budget() -> int:
    from atlas_cli.demo import profile_spec

    return profile_spec("full").token_budget


def main() -> None:
    from ingest.options import DEFAULT_K

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("bench/results"))
    ap.add_argument("--layers", type=int, default=26)
    ap.add_argument("--train-tokens", type=int, default=1_000_000)
    ap.add_argument("--skip-training", action="store_true")
    ap.add_argument(
        "--smoke", action="store_true", help="check every code path on the CPU at tiny shapes; saves nothing"
    )
    args = ap.parse_args()
    import torch

    global DEV
    if args.smoke:
        DEV = "cpu"
    elif not torch.cuda.is_available():
        raise SystemExit(
            "bench_gpu.py needs torch with a CUDA GPU (none is visible); CPU figures come from bench_ingest.py / bench_demo.py"
        )
    result: dict[str, object] = {"machine": gpu_info(), "date": time.strftime("%Y-%m-%d")}
    d_sae, d_model = (512, 64) if args.smoke else (16384, 2304)
    result["matching"] = bench_matching(2 if args.smoke else args.layers, d_sae, d_model, DEFAULT_K)
    print(json.dumps(result["matching"], indent=1), flush=True)
    if not args.smoke:  # save what is measured so far: a run cut short by its lease keeps it
        args.out.mkdir(parents=True, exist_ok=True)
        save_json((args.out / "gpu.json"), result, indent=2)
    if not args.skip_training:
        try:
            result["training"] = bench_training(20_000 if args.smoke else args.train_tokens, smoke=args.smoke)
        except Exception as e:  # noqa: BLE001 - record the failure with the figures that did come out
            result["training"] = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(result["training"], indent=1), flush=True)
    if args.smoke:
        print("smoke run: nothing saved")
        return
    result["gpu_name"] = result["machine"]["gpu_name"]  # type: ignore[index]
    result["gemma_matching_s"] = result["matching"]["gemma_matching_s"]  # type: ignore[index]
    args.out.mkdir(parents=True, exist_ok=True)
    save_json((args.out / "gpu.json"), result, indent=2)
    print(f"saved {args.out / 'gpu.json'}")


if __name__ == "__main__":
    main()
