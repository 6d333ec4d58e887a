"""Wide SAEs: peak memory and time of matching a res(L-1)–res(L) pair streamed from safetensors files
(ingest.streaming) against the same pair loaded whole in memory.

    python -m bench.bench_wide --rows 131072 --d 4096 --query-rows 8192   # the issue's files, a block of queries
    python -m bench.bench_wide --rows 16384 --d 1024                       # the whole problem, a smaller pair

Writes a synthetic SAELens pair (W_dec *and* W_enc, so that "encoders are never read" is part of what is
measured) under --dir (default a temp folder under /tmp; deleted afterwards either way), then runs each mode in
its own process and reads that process's peak RSS (ru_maxrss). Both modes compute top-k both ways (backward:
res(L) rows → res(L-1); forward: res(L-1) rows → res(L)); their indices must agree. ``--query-rows Q`` restricts
the *queries* of each direction to the contiguous rows 0..Q-1 while every candidate row of the other decoder is
still read and compared (the streamed mode streams every candidate tile and the norms of both whole files; the
in-memory mode loads both whole decoders): the memory figures are those of the full-size files, the time is Q/rows
of the full problem's, and the full time is extrapolated linearly (GEMM-bound). The in-memory mode searches with
FAISS's flat fp32 index per direction (``prefilter="off"``: the same arithmetic as the streamed numpy GEMM; the
bf16 pre-filter is another matter, docs/ingest.md). Saves bench/results/wide.json|md (one entry per size and
query rows) with the CPU model, flags, core count and load.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.harness import run_facts, save_json
from bench.machine import machine

REPO = Path(__file__).resolve().parent.parent

K = 5


def write_safetensors_chunked(
    path: Path, shapes: dict[str, tuple[int, ...]], seed: int, chunk_bytes: int = 64 << 20
) -> None:
    """A float32 safetensors file of standard-normal tensors written chunk by chunk (a 2 GiB decoder never sits in
    memory here either); the layout is the format's: 8-byte header length, JSON header, raw little-endian data."""
    rng = np.random.default_rng(seed)
    header: dict[str, object] = {}
    offset = 0
    for name, shape in shapes.items():
        n = int(np.prod(shape)) * 4
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        for shape in shapes.values():
            rows, rest = shape[0], int(np.prod(shape[1:]))
            chunk_rows = max(1, chunk_bytes // (4 * max(1, rest)))
            for a in range(0, rows, chunk_rows):
                f.write(rng.standard_normal((min(rows, a + chunk_rows) - a, rest), dtype=np.float32).tobytes())


def write_pair(folder: Path, rows: int, d: int) -> list[Path]:
    out = []
    for i, name in enumerate(("res-prev", "res")):
        p = folder / name
        p.mkdir(parents=True, exist_ok=True)
        shapes = {"W_dec": (rows, d), "W_enc": (d, rows), "b_enc": (rows,), "b_dec": (d,)}
        done = p / "complete"  # a pair kept by --keep-files from an earlier run of the same size is reused
        if done.is_file() and done.read_text() == f"{rows}x{d}":
            out.append(p)
            continue
        write_safetensors_chunked(p / "sae_weights.safetensors", shapes, seed=i)
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
        done.write_text(f"{rows}x{d}")
        out.append(p)
    return out


def child(mode: str, prev: Path, cur: Path, out: Path, tile_rows: int, query_rows: int) -> None:
    t = time.perf_counter()
    phases: dict[str, float] = {}
    if mode == "stream":
        from ingest.streaming import DecoderFile, streamed_topk

        a, b = DecoderFile(cur), DecoderFile(prev)
        a.norms(tile_rows), b.norms(tile_rows)  # one streamed pass over each whole file
        phases["norms_s"] = round(time.perf_counter() - t, 2)
        t1 = time.perf_counter()
        _, bwd = streamed_topk(a, b, K, tile_rows=tile_rows, query_range=(0, min(query_rows, a.shape[0])))
        phases["backward_s"] = round(time.perf_counter() - t1, 2)
        t1 = time.perf_counter()
        _, fwd = streamed_topk(b, a, K, tile_rows=tile_rows, query_range=(0, min(query_rows, b.shape[0])))
        phases["forward_s"] = round(time.perf_counter() - t1, 2)
    else:
        from ingest.matching import topk_both_ways, topk_search, torch_cuda_available
        from saes.saelens_format import load_sae_dir

        torch_cuda_available()  # imports torch (as ingest does) outside the timed phases; its ~0.4 GiB stays in RSS
        t = time.perf_counter()
        a_w, b_w = load_sae_dir(cur, decoder_only=True).W_dec, load_sae_dir(prev, decoder_only=True).W_dec
        a_w /= np.linalg.norm(a_w, axis=1, keepdims=True)
        b_w /= np.linalg.norm(b_w, axis=1, keepdims=True)
        phases["load_s"] = round(time.perf_counter() - t, 2)
        t1 = time.perf_counter()
        if query_rows >= len(a_w) and query_rows >= len(b_w):  # the whole problem: ingest's one-GEMM both ways
            (_, bwd), (_, fwd) = topk_both_ways(a_w, b_w, K, prefilter="off")
            phases["both_ways_s"] = round(time.perf_counter() - t1, 2)
        else:
            _, bwd = topk_search(a_w[:query_rows], b_w, K, backend="faiss", prefilter="off")
            phases["backward_s"] = round(time.perf_counter() - t1, 2)
            t1 = time.perf_counter()
            _, fwd = topk_search(b_w[:query_rows], a_w, K, backend="faiss", prefilter="off")
            phases["forward_s"] = round(time.perf_counter() - t1, 2)
    seconds = time.perf_counter() - t
    np.save(out / f"{mode}-bwd.npy", bwd)
    np.save(out / f"{mode}-fwd.npy", fwd)
    # VmHWM: this process's own peak. ru_maxrss is not: exec folds the peak of the memory the process was spawned
    # from (subprocess forks/vforks the parent) into it, so it reported the generator's peak, not the matcher's.
    status = Path("/proc/self/status").read_text()
    rss = int(status.split("VmHWM:")[1].split()[0]) * 1024
    print(json.dumps({"mode": mode, "seconds": round(seconds, 2), "peak_rss_bytes": rss, **phases}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=16_384)
    ap.add_argument("--d", type=int, default=1_024)
    ap.add_argument("--tile-rows", type=int, default=8_192)
    ap.add_argument("--query-rows", type=int, default=0, help="query rows per direction (default: all)")
    ap.add_argument("--dir", type=Path, default=None, help="where to write the pair (deleted afterwards)")
    ap.add_argument("--keep-files", action="store_true", help="keep the pair in --dir for another run (reused)")
    ap.add_argument("--child", nargs=4, metavar=("MODE", "PREV", "CUR", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    query_rows = args.query_rows or args.rows
    if args.child:
        mode, prev, cur, out = args.child
        child(mode, Path(prev), Path(cur), Path(out), args.tile_rows, query_rows)
        return
    started = machine()
    made = args.dir is None or not args.dir.exists()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="atlas-wide-", dir="/tmp"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        prev, cur = write_pair(folder, args.rows, args.d)
        gen_s = time.perf_counter() - t
        runs = {}
        for mode in ("stream", "memory"):
            res = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.bench_wide",
                    "--tile-rows",
                    str(args.tile_rows),
                    "--query-rows",
                    str(query_rows),
                    "--child",
                    mode,
                    str(prev),
                    str(cur),
                    str(folder),
                ],
                check=True,
                capture_output=True,
                text=True,
                cwd=REPO,
            )
            runs[mode] = json.loads(res.stdout.strip().splitlines()[-1])
            print(mode, runs[mode], flush=True)
        same = all(
            np.array_equal(np.load(folder / f"stream-{w}.npy")[:, 0], np.load(folder / f"memory-{w}.npy")[:, 0])
            for w in ("bwd", "fwd")
        )
        file_bytes = sum((p / "sae_weights.safetensors").stat().st_size for p in (prev, cur))
    finally:
        kept = (folder / "res-prev", folder / "res") if args.keep_files else ()
        for p in {folder / "res-prev", folder / "res", *folder.glob("*.npy")} - set(kept):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        if made and not args.keep_files:
            shutil.rmtree(folder, ignore_errors=True)
    decoder_bytes = args.rows * args.d * 4
    share = query_rows / args.rows
    result = {
        "rows": args.rows,
        "d": args.d,
        "k": K,
        "tile_rows": args.tile_rows,
        "query_rows_per_direction": query_rows,
        "restricted": share < 1,
        "what_was_restricted": (
            f"queries of each direction restricted to rows 0..{query_rows - 1} of {args.rows:,}; every candidate row "
            "read and compared; norms of both whole files computed; memory figures are the full-size files'"
            if share < 1
            else "nothing: the whole problem both ways"
        ),
        "multiply_adds_measured": 2 * query_rows * args.rows * args.d,
        "multiply_adds_full_both_ways": 2 * args.rows * args.rows * args.d,
        "extrapolated_full_s": {
            mode: round(
                runs[mode].get("backward_s", 0) / share + runs[mode].get("forward_s", 0) / share
                if share < 1
                else runs[mode]["seconds"],
                0,
            )
            for mode in ("stream", "memory")
        },
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
                "-m",
                "bench.bench_wide",
                "--rows",
                str(args.rows),
                "--d",
                str(args.d),
                "--tile-rows",
                str(args.tile_rows),
                *(["--query-rows", str(query_rows)] if share < 1 else []),
            ]
        ),
    }
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    # one entry per size: runs at several sizes show how each mode's peak grows with the decoders
    path = out / "wide.json"
    runs_by_size = json.loads(path.read_text()).get("runs", {}) if path.is_file() else {}
    result["run"] = run_facts()  # this size's loads (the file keeps other sizes' runs, each with its own)
    runs_by_size[f"{args.rows}x{args.d}" + (f"-q{query_rows}" if share < 1 else "")] = result
    quiet_all = all(r.get("run", {}).get("quiet", False) for r in runs_by_size.values())
    save_json(path, {"runs": runs_by_size}, indent=2, parts_quiet=quiet_all)
    gib = 2**30
    title = f"{args.rows:,} × {args.d:,}, fp32: {decoder_bytes / gib:.2f} GiB per decoder"
    if share < 1:
        title += f"; queries restricted to {query_rows:,} rows per direction"
    ext = result["extrapolated_full_s"]
    md = [
        f"# Wide SAE pair streamed vs in memory ({title})",
        "",
        "| mode | peak RSS | time measured | phases | full problem, extrapolated |",
        "|---|---|---|---|---|",
        *(
            f"| {label} | {runs[m]['peak_rss_bytes'] / gib:.2f} GiB | {runs[m]['seconds']:.1f} s | "
            + ", ".join(f"{key[:-2]} {v} s" for key, v in runs[m].items() if key.endswith("_s"))
            + f" | {ext[m]:,.0f} s ({ext[m] / 3600:.1f} h) |"
            for m, label in (("stream", "streamed tiles (ingest.streaming)"), ("memory", "loaded whole (FAISS flat)"))
        ),
        "",
        f"Restricted: {result['what_was_restricted']}.",
        "",
        f"Top-1 identical both ways: {same}. Files hold W_enc too ({file_bytes / gib:.2f} GiB in all); neither mode reads it.",
        f"Machine: {started['cpu']} ({' '.join(started['cpu_flags'])}), {started['cores']} cores. "
        + result["run"]["noise"],
        f"Command: `{result['command']}`.",
    ]
    md_path = out / "wide.md"
    previous = md_path.read_text().split("\n# ") if md_path.is_file() else []
    kept = [p if p.startswith("# ") else "# " + p for p in previous if p.strip() and f"({title})" not in p]
    md_path.write_text("\n".join([*(k.rstrip("\n") + "\n" for k in kept), "\n".join(md) + "\n"]))
    print("\n".join(md))


if __name__ == "__main__":
    main()
