"""Wide SAEs: peak memory and time of matching a res(L-1)–res(L) pair streamed from memory-mapped safetensors
(ingest.streaming) against the same pair loaded whole (what ingest does today).

    python bench/bench_wide.py --rows 131072 --d 4096      # the issue's size: 2 GiB per decoder (+ encoders)
    python bench/bench_wide.py --rows 16384 --d 1024       # what a shared 2-core machine can afford

Writes a synthetic SAELens pair (W_dec *and* W_enc, so that "encoders are never read" is part of what is
measured) under --dir (default a temp folder under /tmp, deleted afterwards), then runs each mode in its own
process and reads that process's peak RSS (ru_maxrss). Both modes compute top-k both ways (backward: each
res(L) row's predecessors; forward: each res(L-1) row's successors); their indices must agree. Saves
bench/results/wide.json|md (one entry per size) with the CPU model, core count and load.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench_ingest import machine  # noqa: E402

K = 5


def write_pair(folder: Path, rows: int, d: int) -> list[Path]:
    from safetensors.numpy import save_file

    out = []
    for i, name in enumerate(("res-prev", "res")):
        rng = np.random.default_rng(i)
        p = folder / name
        p.mkdir(parents=True, exist_ok=True)
        w_dec = rng.standard_normal((rows, d), dtype=np.float32)
        save_file(
            {
                "W_dec": w_dec,
                "W_enc": np.ascontiguousarray(w_dec.T),
                "b_enc": np.zeros(rows, np.float32),
                "b_dec": np.zeros(d, np.float32),
            },
            str(p / "sae_weights.safetensors"),
        )
        (p / "cfg.json").write_text(
            json.dumps(
                {
                    "d_in": d,
                    "d_sae": rows,
                    "architecture": "standard",
                    "dtype": "float32",
                    "apply_b_dec_to_input": True,
                    "normalize_activations": "none",
                }
            )
        )
        del w_dec
        out.append(p)
    return out


def child(mode: str, prev: Path, cur: Path, out: Path, tile_rows: int) -> None:
    t = time.perf_counter()
    if mode == "stream":
        from ingest.streaming import DecoderFile, streamed_topk

        a, b = DecoderFile(cur), DecoderFile(prev)
        _, bwd = streamed_topk(a, b, K, tile_rows=tile_rows)
        _, fwd = streamed_topk(b, a, K, tile_rows=tile_rows)
    else:
        from ingest.matching import topk_both_ways
        from saes.saelens_format import load_sae_dir

        a_w, b_w = load_sae_dir(cur, decoder_only=True).W_dec, load_sae_dir(prev, decoder_only=True).W_dec
        a_w /= np.linalg.norm(a_w, axis=1, keepdims=True)
        b_w /= np.linalg.norm(b_w, axis=1, keepdims=True)
        (_, bwd), (_, fwd) = topk_both_ways(a_w, b_w, K, prefilter="off")
    seconds = time.perf_counter() - t
    np.save(out / f"{mode}-bwd.npy", bwd)
    np.save(out / f"{mode}-fwd.npy", fwd)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"mode": mode, "seconds": round(seconds, 2), "peak_rss_bytes": rss}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=16_384)
    ap.add_argument("--d", type=int, default=1_024)
    ap.add_argument("--tile-rows", type=int, default=8_192)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--child", nargs=4, metavar=("MODE", "PREV", "CUR", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, prev, cur, out = args.child
        child(mode, Path(prev), Path(cur), Path(out), args.tile_rows)
        return
    started = machine()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="atlas-wide-", dir="/tmp"))
    try:
        t = time.perf_counter()
        prev, cur = write_pair(folder, args.rows, args.d)
        gen_s = time.perf_counter() - t
        runs = {}
        for mode in ("stream", "memory"):
            res = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--tile-rows",
                    str(args.tile_rows),
                    "--child",
                    mode,
                    str(prev),
                    str(cur),
                    str(folder),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            runs[mode] = json.loads(res.stdout.strip().splitlines()[-1])
        same = all(
            np.array_equal(np.load(folder / f"stream-{w}.npy")[:, 0], np.load(folder / f"memory-{w}.npy")[:, 0])
            for w in ("bwd", "fwd")
        )
        file_bytes = sum((p / "sae_weights.safetensors").stat().st_size for p in (prev, cur))
    finally:
        if args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)
    decoder_bytes = args.rows * args.d * 4
    result = {
        "rows": args.rows,
        "d": args.d,
        "k": K,
        "tile_rows": args.tile_rows,
        "decoder_bytes_each": decoder_bytes,
        "files_bytes_total_with_encoders": file_bytes,
        "generate_s": round(gen_s, 1),
        "stream": runs["stream"],
        "memory": runs["memory"],
        "top1_identical_both_ways": bool(same),
        "rss_ratio_memory_over_stream": round(runs["memory"]["peak_rss_bytes"] / runs["stream"]["peak_rss_bytes"], 2),
        "time_ratio_stream_over_memory": round(runs["stream"]["seconds"] / runs["memory"]["seconds"], 2),
        "machine_at_start": started,
        "machine_at_end": machine(),
        "command": " ".join(
            [
                "python",
                "bench/bench_wide.py",
                "--rows",
                str(args.rows),
                "--d",
                str(args.d),
                "--tile-rows",
                str(args.tile_rows),
            ]
        ),
    }
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    # one entry per size: runs at several sizes show how each mode's peak grows with the decoders
    path = out / "wide.json"
    runs_by_size = json.loads(path.read_text()).get("runs", {}) if path.is_file() else {}
    runs_by_size[f"{args.rows}x{args.d}"] = result
    path.write_text(json.dumps({"runs": runs_by_size}, indent=2) + "\n")
    gib = 2**30
    md = [
        f"# Wide SAE pair streamed vs in memory ({args.rows:,} × {args.d:,}, fp32: {decoder_bytes / gib:.2f} GiB per decoder)",
        "",
        "| mode | peak RSS | time |",
        "|---|---|---|",
        f"| streamed tiles (ingest.streaming) | {runs['stream']['peak_rss_bytes'] / gib:.2f} GiB | {runs['stream']['seconds']:.1f} s |",
        f"| loaded whole (today's ingest path) | {runs['memory']['peak_rss_bytes'] / gib:.2f} GiB | {runs['memory']['seconds']:.1f} s |",
        "",
        f"Top-1 identical both ways: {same}. Files hold W_enc too ({file_bytes / gib:.2f} GiB in all); neither mode reads it.",
        f"Machine: {started['cpu']}, {started['cores']} cores, load {started['loadavg_1_5_15']} at start ({started['note']}).",
        f"Command: `{result['command']}`.",
    ]
    md_path = out / "wide.md"
    previous = md_path.read_text().split("\n# ") if md_path.is_file() else []
    kept = [
        p if p.startswith("# ") else "# " + p
        for p in previous
        if p.strip() and f"({args.rows:,} × {args.d:,}," not in p
    ]
    md_path.write_text("\n".join([*(k.rstrip("\n") + "\n" for k in kept), "\n".join(md) + "\n"]))
    print("\n".join(md))


if __name__ == "__main__":
    main()
