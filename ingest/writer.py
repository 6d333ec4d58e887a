"""Writing one matched layer to Neo4j (:func:`write_layer`), and :class:`LayerWriter`, which writes layer L on a
background thread while the caller matches layer L+1. The statements are in ``queries.ingest_writes``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from ingest.layer_matching import LayerResult
from ingest.options import IngestOptions, IngestReport
from queries import ingest_writes as W
from queries.db import Graph
from queries.ids import feature_uid, sae_key


class LayerWriter:
    """Writes matched layers in order, each overlapping the matching of the next when ``overlap`` is on.

    Matching is GEMM work in native code that releases the GIL; writing is mostly Neo4j's own work and the
    driver's packing. One background thread and at most one layer waiting (memory holds two layers' results);
    a failed write surfaces at the next ``submit`` or at ``finish``, and ``close`` never leaves while a layer is
    half-sent. ``write`` does the work (``write_layer`` at ingest); ``waited_s`` is what overlapping did not hide.
    """

    def __init__(self, write: Callable[[LayerResult], None], overlap: bool) -> None:
        self._write = write
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="atlas-write") if overlap else None
        self._pending: Future[None] | None = None
        self.waited_s = 0.0

    def submit(self, result: LayerResult) -> None:
        if self._pool is None:
            self._write(result)
            return
        self.finish()  # the previous layer first: order (resume relies on it) and bounded memory
        self._pending = self._pool.submit(self._write, result)

    def finish(self) -> None:
        """Wait for the layer being written; its error, if any, is raised here."""
        pending, self._pending = self._pending, None
        if pending is not None:
            t = time.perf_counter()
            try:
                pending.result()
            finally:
                self.waited_s += time.perf_counter() - t

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def timed_write(
    graph: Graph, atlas: str, opts: IngestOptions, report: IngestReport, bar: Any
) -> Callable[[LayerResult], None]:
    def write(result: LayerResult) -> None:
        t = time.perf_counter()
        write_layer(graph, atlas, result, opts, report, bar)
        report.write_s += time.perf_counter() - t
        report.layers_written.append(result.layer)

    return write


def write_layer(
    graph: Graph, atlas: str, r: LayerResult, opts: IngestOptions, report: IngestReport, bar: Any = None
) -> None:
    """Write one layer's features and the edges into its res SAE (see module docstring for why this order)."""
    t0 = time.perf_counter()
    W.delete_in_batches(graph, W.DELETE_EDGES_INTO_LAYER, {"atlas": atlas, "layer": r.layer})
    for mod, cols in r.features.items():
        n = len(cols["index"])
        prefix = feature_uid(atlas, r.layer, mod, 0)[:-1]
        # CREATE when none of this SAE's features exist (the common case, ~2x faster than MERGE); a
        # re-ingest or a half-written SAE left by a killed run MERGEs, so no feature is ever duplicated
        # and properties set by others (labels) survive.
        existing = int(graph.read(W.COUNT_SAE_FEATURES, {"atlas": atlas, "layer": r.layer, "module": mod})[0]["n"])
        statement = W.CREATE_FEATURES if existing == 0 else W.UPSERT_FEATURES
        for a in range(0, n, opts.node_batch):
            b = min(n, a + opts.node_batch)
            cut = lambda v, a=a, b=b: v[a:b] if isinstance(v, list) else v  # noqa: E731
            graph.write(
                statement,
                {
                    "prefix": prefix,
                    "atlas": atlas,
                    "layer": r.layer,
                    "module": mod,
                    "d_sae": cols["d_sae"],
                    "index": cut(cols["index"]),
                    "norm": cut(cols["norm"]),
                    "source_norm": cut(cols.get("source_norm")),
                    "s_res": cut(cols["s_res"]),
                    "s_att": cut(cols["s_att"]),
                    "s_mlp": cut(cols["s_mlp"]),
                    "category": cut(cols["category"]),
                },
                timeout=300,
            )
            report.nodes_written += b - a
            if bar is not None:
                bar.set_postfix_str(f"L{r.layer} nodes {mod}")
    t1 = time.perf_counter()
    batches: list[tuple[dict[str, Any], str]] = []
    for es in r.edges:
        n = len(es)
        src, dst, sim = es.src.tolist(), es.dst.tolist(), es.sim.astype(float).tolist()
        tr, sr = _as_list(es.target_rank, True), _as_list(es.source_rank, True)
        # None for cosine edges and adjacent layers: Neo4j stores no property, so cosine-only atlases are unchanged
        score = es.score.astype(float).tolist() if es.score is not None else None
        distance = es.distance if es.distance > 1 else None
        for a in range(0, n, opts.edge_batch):
            b = min(n, a + opts.edge_batch)
            batches.append(
                (
                    {
                        "atlas": atlas,
                        "src_layer": es.source_layer,
                        "src_module": es.source_module,
                        "dst_layer": r.layer,
                        "src": src[a:b],
                        "dst": dst[a:b],
                        "sim": sim[a:b],
                        "target_rank": tr[a:b],
                        "source_rank": sr[a:b],
                        "written_layer": es.written_layer,
                        "method": es.method,
                        "score": score[a:b] if score is not None else None,
                        "distance": distance,
                    },
                    es.source_module,
                )
            )

    for params, mod in batches:
        graph.write(W.CREATE_EDGES, params, timeout=300)
        report.edges_written += len(params["src"])
        if bar is not None:
            bar.set_postfix_str(f"L{r.layer} edges {mod}")
    graph.write(W.SET_SAE_CONTROLS, {"key": sae_key(atlas, r.layer, "res"), "props": r.controls})
    graph.write(W.MARK_LAYER_COMPLETE, {"atlas": atlas, "layer": r.layer})
    t2 = time.perf_counter()
    report.node_write_s += t1 - t0
    report.edge_write_s += t2 - t1


def _as_list(a: np.ndarray, null_below_zero: bool = False) -> list[Any]:
    if null_below_zero:
        return [None if v < 0 else v for v in a.tolist()]
    return a.tolist()
