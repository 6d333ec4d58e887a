"""Writes overlapped with matching, A/B: the same Gemma-shaped atlas ingested with ``overlap_writes`` off and on.

    python -m bench.bench_ingest_overlap [--layers 6] [--repeats 2]        # into the Neo4j at NEO4J_URI
    env <AVX2_EMULATION> python -m bench.bench_ingest_overlap --results-dir bench/results/avx2-emulated

Each round ingests the atlas (dropped before and after) once sequentially (each layer written after it is
matched) and once overlapped (layer L written on a background thread while L+1 is matched), alternating, and
reports medians of the wall time, the matching time, the write time and the time the main thread waited for a
write. Both modes must write the same number of features and edges. Saves ingest-overlap.json|md.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

from bench.bench_ingest import manifest_for
from bench.harness import save_json
from bench.machine import machine
from ingest.options import IngestOptions
from ingest.pipeline import ingest_atlas
from queries.db import Graph
from queries.maintenance import drop_atlas

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=6, help="First N layers of the Gemma shape (16,384 × 2,304).")
    ap.add_argument("--repeats", type=int, default=2, help="Rounds; each round runs both modes.")
    ap.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("neo4j").setLevel(logging.ERROR)
    m = manifest_for("gemma", args.layers)
    runs: dict[str, list[dict[str, float]]] = {"sequential": [], "overlap": []}
    for _ in range(args.repeats):
        for mode in ("sequential", "overlap"):
            with Graph() as g:
                drop_atlas(g, m.name)
                t = time.perf_counter()
                rep = ingest_atlas(m, g, options=IngestOptions(k=5, overlap_writes=mode == "overlap"))
                wall = time.perf_counter() - t
                drop_atlas(g, m.name)
            run = {
                "wall_s": round(wall, 1),
                "matching_s": round(rep.match_s, 1),
                "write_s": round(rep.write_s, 1),
                "write_wait_s": round(rep.write_wait_s, 1),
                "nodes": rep.nodes_written,
                "edges": rep.edges_written,
            }
            runs[mode].append(run)
            print(json.dumps({"mode": mode, **run}), flush=True)
    counts = {(r["nodes"], r["edges"]) for rs in runs.values() for r in rs}
    if len(counts) != 1:
        raise SystemExit(f"the two modes wrote different graphs: {sorted(counts)}")
    med = {mode: {k: round(statistics.median(r[k] for r in rs), 2) for k in rs[0]} for mode, rs in runs.items()}
    out = {
        "atlas": m.name,
        "layers": args.layers,
        "machine": machine(),
        "runs": runs,
        "median": med,
        "overlap_over_sequential_wall": round(med["overlap"]["wall_s"] / med["sequential"]["wall_s"], 3),
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    save_json((args.results_dir / "ingest-overlap.json"), out, indent=1)
    mach = out["machine"]
    lines = [
        f"# Writes overlapped with matching ({m.name}: {args.layers} layers × 3 × 16,384, d 2,304)",
        "",
        f"Machine: {mach['cpu']}, {mach['cores']} cores, load {mach['loadavg_1_5_15']}; {mach.get('note', '')}. "
        f"{args.repeats} alternating rounds, medians.",
        "",
        "| mode | wall s | matching s | writes s | main thread waited for writes s |",
        "|---|---|---|---|---|",
    ]
    for mode, r in med.items():
        lines.append(f"| {mode} | {r['wall_s']} | {r['matching_s']} | {r['write_s']} | {r['write_wait_s']} |")
    lines += ["", f"overlap ÷ sequential (wall): **{out['overlap_over_sequential_wall']}**"]
    (args.results_dir / "ingest-overlap.md").write_text("\n".join(lines) + "\n")
    print(json.dumps({"overlap_over_sequential_wall": out["overlap_over_sequential_wall"]}))


if __name__ == "__main__":
    main()
