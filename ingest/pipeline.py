"""``ingest_atlas``: manifest → validated decoders → matching → scores/edges → Neo4j, resumably.

Order of work (each step finishes before the next starts):
1. validate every SAE (nothing is written if any is bad);
2. write schema, the ``Atlas`` node (``complete = false``), the ``IngestRun`` and the ``SAE`` nodes;
3. per layer L, in increasing order — the unit of resumption: load decoders of ``res(L)``,
   ``att(L)``, ``mlp(L)`` (``res(L-1)`` is kept from the previous unit), match, compute scores and
   categories, then write: delete every edge into ``res(L)`` (leftovers of a killed run), MERGE the
   features of layer L, CREATE the edges into ``res(L)``, and mark layer L's SAE nodes complete;
4. mark the atlas complete.

Resumption: with ``resume=True`` layers whose SAE nodes are complete are skipped (their matching is
not recomputed, except ``res(L-1)`` decoders which are reloaded). Anything a killed run left of the
incomplete layer is overwritten (features MERGE) or deleted first (edges), so the final graph equals an
uninterrupted run's. Without ``resume`` every layer is rewritten (idempotent). A manifest whose SAE
set or sizes differ from the stored atlas first drops the old atlas.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ingest.decoders import (
    Decoder,
    DecoderCache,
    WrittenSlice,
    clt_entries,
    layer_decoders,
    load_unit_decoder,
    validate_atlas,
    written_slices,
)
from ingest.matching import Backend, topk_both_ways, topk_search
from ingest.prefilter import Prefilter
from ingest.scores import EdgeSet, Thresholds, backward_edges, categorize, residual_edges
from ingest.settings import IngestSettings, parse_memory_budget
from ingest.streaming import DEFAULT_TILE_ROWS, DecoderFile, streamable, streamed_null_top1, streamed_topk
from queries import ingest_writes as W
from queries import maintenance
from queries.atlases import known_atlases
from queries.categories import NEVER, stored_cuts
from queries.db import Graph
from queries.errors import AtlasNotFound, DatabaseUnavailable, InvalidInput
from queries.ids import Module, feature_uid, sae_key
from queries.schema import CATEGORIES, NO_CATEGORY, ensure_schema
from saes.controls import DEFAULT_NULL_ROWS, null_top1, summarise_scores, top1_scores
from saes.manifest import AtlasManifest
from saes.projections import OutputProjections
from saes.sources import neuronpedia_id
from saes.weights import CLT_ARCHITECTURES

log = logging.getLogger(__name__)

DEFAULT_K = 5
NODE_BATCH = 20_000
EDGE_BATCH = 50_000


@dataclass
class IngestOptions:
    k: int = DEFAULT_K
    thresholds: Thresholds = field(default_factory=Thresholds)
    backend: Backend = "faiss"
    prefilter: Prefilter = "auto"  # bf16 pre-filter for the CPU (ingest/prefilter.py); never changes results
    null_rows: int = DEFAULT_NULL_ROWS  # null samples per SAE pair (saes.controls); 0 = no null (not with a null rule)
    resume: bool = False
    progress: bool = False
    node_batch: int = NODE_BATCH
    edge_batch: int = EDGE_BATCH
    # Match on a Ray cluster (ingest/ray_matching.py): its address, or "auto" for a local one; None = in this process.
    ray: str | None = None
    gpu: bool = False  # with ray: one GPU per matching task (an error when the cluster has none)
    ray_num_cpus: int | None = None  # with ray="auto": CPUs of the local cluster (None: all)
    # W_O per layer for attention SAEs on hook_z (steering.architectures.model_projections(manifest.model))
    projections: OutputProjections | None = None
    # Decoders validation read are kept for matching up to this size instead of being read again (ingest/decoders.py).
    decoder_cache_bytes: int = 1 << 30
    # A layer whose largest SAE pair's decoders (fp32) exceed this many bytes is matched by streaming tiles from the
    # files (match_layer_streamed) when its SAEs allow it; None: IngestSettings.match_memory_budget (25% of RAM).
    memory_budget: int | None = None
    stream_tile_rows: int = DEFAULT_TILE_ROWS
    # Write layer L to Neo4j on a background thread while layer L+1 is matched (at most one layer waits, so memory
    # holds two layers' results; layers are still written in order, so resume is unchanged). False: one after the other.
    overlap_writes: bool = True


@dataclass
class IngestReport:
    atlas: str
    layers_written: list[int]
    layers_skipped: list[int]
    n_features: int
    n_edges: int
    match_s: float = 0.0
    write_s: float = 0.0
    nodes_written: int = 0
    edges_written: int = 0
    node_write_s: float = 0.0
    edge_write_s: float = 0.0
    streamed_layers: list[int] = field(default_factory=list)  # matched by streaming tiles (over the memory budget)
    # Time the main thread waited for a background write (overlap_writes): what overlapping did not hide.
    write_wait_s: float = 0.0


@dataclass
class LayerResult:
    layer: int
    features: dict[str, dict[str, Any]]  # module → column lists for UPSERT_FEATURES
    edges: list[EdgeSet]
    controls: dict[str, Any] = field(default_factory=dict)  # properties for the res(L) SAE node (nulls, cuts, rule)


def match_layer(
    layer: int,
    dec: dict[str, Decoder],
    prev_res: Decoder | None,
    k: int,
    th: Thresholds,
    backend: Backend,
    prefilter: Prefilter = "auto",
    null_rows: int = DEFAULT_NULL_ROWS,
    written: Sequence[WrittenSlice] = (),
) -> LayerResult:
    """All matching of one layer: scores, null controls, categories and edges into ``res(layer)``.

    ``written``: what cross-layer transcoder features of earlier layers write into this one; they are mlp
    candidates of ``res(layer)`` beside ``mlp(layer)`` (docs/ingest.md, "Cross-layer transcoders")."""
    res = dec["res"]
    n = res.d_sae
    edges: list[EdgeSet] = []
    s: dict[str, np.ndarray | None] = {"res": None, "att": None, "mlp": None}
    if prev_res is not None:
        bwd, fwd = topk_both_ways(res.unit, prev_res.unit, k, prefilter=prefilter)
        s["res"] = bwd[0][:, 0].copy()
        edges.append(residual_edges(layer - 1, bwd, fwd, prev_res.d_sae))
    preds: dict[str, np.ndarray | None] = {"res": prev_res.unit if prev_res is not None else None}
    for mod in ("att", "mlp"):
        clt_here = mod == "mlp" and (written or (mod in dec and dec[mod].architecture in CLT_ARCHITECTURES))
        if clt_here:
            sims, edge_sets, base = _match_mlp_with_clts(layer, res, dec.get("mlp"), written, k, backend, prefilter)
            s[mod] = sims[:, 0].copy()
            edges.extend(edge_sets)
            preds[mod] = base
        elif mod in dec:
            sims, idx = topk_search(res.unit, dec[mod].unit, k, backend=backend, prefilter=prefilter)
            s[mod] = sims[:, 0].copy()
            edges.append(backward_edges(mod, layer, sims, idx))
            preds[mod] = dec[mod].unit
    controls, cuts = layer_controls(layer, res.unit, preds, s, th, null_rows)
    cats = categorize(s["res"], s["att"], s["mlp"], n, th, cuts)
    features = {mod: _feature_columns(mod, d.norms, d.source_norms, s, cats) for mod, d in dec.items()}
    return LayerResult(layer, features, edges, controls)


def _feature_columns(
    mod: str, norms: np.ndarray, source_norms: np.ndarray | None, s: dict[str, np.ndarray | None], cats: np.ndarray
) -> dict[str, Any]:
    """One SAE's feature columns for UPSERT_FEATURES (scores and categories on res features only)."""
    is_res = mod == "res"
    return {
        "index": list(range(len(norms))),
        "norm": norms.astype(float).tolist(),
        "source_norm": source_norms.astype(float).tolist() if source_norms is not None else None,
        "s_res": s["res"].astype(float).tolist() if is_res and s["res"] is not None else None,
        "s_att": s["att"].astype(float).tolist() if is_res and s["att"] is not None else None,
        "s_mlp": s["mlp"].astype(float).tolist() if is_res and s["mlp"] is not None else None,
        "category": cats.tolist() if is_res else None,
        "d_sae": len(norms),
    }


def resumable(graph: Graph, manifest: AtlasManifest) -> bool:
    """Whether the graph holds an ingest of exactly this manifest (same fingerprint, revision included) that a
    ``resume`` may finish; otherwise a rebuild is needed (``atlas demo`` after retraining a profile)."""
    existing = graph.read(W.GET_ATLAS, {"name": manifest.name})
    return bool(existing) and existing[0]["sha"] == manifest.sha256()


def summarise_controls(graph: Graph, atlas: str) -> dict[str, Any]:
    """Write the Atlas-node view of the per-pair nulls (:func:`atlas_controls`) from its SAE nodes."""
    props = atlas_controls(graph.read(W.SAE_CONTROLS, {"atlas": atlas}))
    graph.write(W.SET_ATLAS_CONTROLS, {"atlas": atlas, "props": props})
    return props


def atlas_controls(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Atlas-node view of the per-pair nulls: the mean of their medians, the largest 99.9th percentile, and
    the category rule(s) of the res SAEs (one rule unless layers were ingested with different options).
    ``rows``: one per res SAE with ``rule`` and ``{res,att,mlp}_null_median/_p999`` (missing = None)."""
    meds = [r[f"{p}_null_median"] for r in rows for p in MODULES if r.get(f"{p}_null_median") is not None]
    p999 = [r[f"{p}_null_p999"] for r in rows for p in MODULES if r.get(f"{p}_null_p999") is not None]
    return {
        "null_median_mean": float(np.mean(meds)) if meds else None,
        "null_p999_max": float(max(p999)) if p999 else None,
        "category_rules": sorted({r["rule"] for r in rows if r.get("rule")}),
    }


# The properties layer_controls may put on a res SAE node, with their neo4j-admin import types (ingest.bulk).
MODULES = ("res", "att", "mlp")
CONTROL_FIELDS: dict[str, str] = (
    {"category_rule": "string"}
    | {
        f"{p}_{name}": typ
        for p in MODULES
        for name, typ in (
            ("score_median", "double"),
            ("null_median", "double"),
            ("null_p99", "double"),
            ("null_p999", "double"),
            ("null_n", "long"),
        )
    }
    | {f"cut_{p}": "double" for p in MODULES}
)


# The properties ceiling_controls puts on an SAE node, with their neo4j-admin import types (ingest.bulk).
CEILING_FIELDS: dict[str, str] = {
    "ceiling_median": "double",
    "ceiling_p99": "double",
    "ceiling_share_ge_half": "double",
    "ceiling_seed": "string",
}


def ceiling_controls(
    manifest: AtlasManifest, d_model: int, projections: OutputProjections | None
) -> dict[tuple[int, str], dict[str, Any]]:
    """Seed ceilings: for every ``[[ceiling]]`` SAE, the top-1 cosine of its hook point's atlas SAE against it
    (saes.controls), as properties of that SAE node. Computed before anything is written, so a bad ceiling
    file stops the ingest with nothing written; several seeds of one hook point pool their scores."""
    scores: dict[tuple[int, str], list[np.ndarray]] = {}
    seeds: dict[tuple[int, str], list[str]] = {}
    for c in manifest.ceilings:
        main = manifest.entry(c.layer, c.module)
        assert main is not None  # the manifest guarantees a [[sae]] for every [[ceiling]]
        a = load_unit_decoder(main, manifest.base_dir, d_model, projections)
        b = load_unit_decoder(c, manifest.base_dir, d_model, projections)
        key = (c.layer, c.module.value)
        scores.setdefault(key, []).append(top1_scores(a.unit, b.unit))
        seeds.setdefault(key, []).append(c.describe())
    out = {}
    for key, parts in scores.items():
        s = np.concatenate(parts)
        summ = summarise_scores(s)
        out[key] = {
            "ceiling_median": summ.median,
            "ceiling_p99": summ.p99,
            "ceiling_share_ge_half": float((s >= 0.5).mean()),
            "ceiling_seed": ", ".join(seeds[key]),
        }
    return out


def match_layer_streamed(
    layer: int,
    files: dict[str, DecoderFile],
    prev_res: DecoderFile | None,
    k: int,
    th: Thresholds,
    null_rows: int = DEFAULT_NULL_ROWS,
    tile_rows: int = DEFAULT_TILE_ROWS,
) -> LayerResult:
    """:func:`match_layer` with every decoder read tile by tile from its file (ingest/streaming.py): the same edges,
    scores, categories and null controls, in memory bounded by the tiles instead of the decoders."""
    res = files["res"]
    n = res.shape[0]
    edges: list[EdgeSet] = []
    s: dict[str, np.ndarray | None] = {"res": None, "att": None, "mlp": None}
    if prev_res is not None:
        bwd = streamed_topk(res, prev_res, k, tile_rows=tile_rows)
        fwd = streamed_topk(prev_res, res, k, tile_rows=tile_rows)
        s["res"] = bwd[0][:, 0].copy()
        edges.append(residual_edges(layer - 1, bwd, fwd, prev_res.shape[0]))
    for mod in ("att", "mlp"):
        if mod in files:
            sims, idx = streamed_topk(res, files[mod], k, tile_rows=tile_rows)
            s[mod] = sims[:, 0].copy()
            edges.append(backward_edges(mod, layer, sims, idx))
    preds = {"res": prev_res, "att": files.get("att"), "mlp": files.get("mlp")}
    controls, cuts = layer_controls(layer, res, preds, s, th, null_rows)
    cats = categorize(s["res"], s["att"], s["mlp"], n, th, cuts)
    features = {mod: _feature_columns(mod, f.norms(tile_rows), None, s, cats) for mod, f in files.items()}
    return LayerResult(layer, features, edges, controls)


def _files_to_stream(
    manifest: AtlasManifest,
    layer: int,
    d_model: int,
    sizes: dict[tuple[int, str], int],
    budget: int,
    clts: Mapping[int, object],
) -> tuple[dict[str, DecoderFile], DecoderFile | None] | None:
    """The files to stream layer ``layer`` from when its largest pair (res(L) with res(L-1), att(L) or mlp(L), fp32)
    is over ``budget`` bytes; None: match it in memory (within budget, or not streamable: logged)."""
    res = sizes[(layer, "res")]
    preds = [sizes.get(key, 0) for key in ((layer - 1, "res"), (layer, "att"), (layer, "mlp"))]
    pair = (res + max(preds)) * d_model * 4
    if pair <= budget:
        return None
    files = streamed_layer_files(manifest, layer, d_model, clts)
    if files is None:
        log.warning(
            "layer %d: its SAE pairs (%.2f GiB) exceed the matching memory budget (%.2f GiB) but one of its SAEs cannot be "
            "streamed (synthetic, registry, hook_z, transcoder or CLT): loading it whole",
            layer,
            pair / 2**30,
            budget / 2**30,
        )
    return files


def streamed_layer_files(
    manifest: AtlasManifest, layer: int, d_model: int, clts: Mapping[int, object]
) -> tuple[dict[str, DecoderFile], DecoderFile | None] | None:
    """The layer's decoders (and res(L-1)) as files to stream, or None when one of them cannot be streamed (a
    synthetic, registry or hook_z SAE, a cross-layer transcoder, or CLT slices written into this layer)."""
    if clts and any(i <= layer for i in clts):
        return None
    files: dict[str, DecoderFile] = {}
    for e in manifest.saes:
        if e.layer == layer:
            f = streamable(e, manifest.base_dir, d_model)
            if f is None:
                return None
            files[e.module.value] = f
    prev = None
    if layer - 1 in manifest.layers:
        prev_entry = manifest.entry(layer - 1, Module.RES)
        assert prev_entry is not None
        prev = streamable(prev_entry, manifest.base_dir, d_model)
        if prev is None:
            return None
    return files, prev


def _match_mlp_with_clts(
    layer: int,
    res: Decoder,
    mlp: Decoder | None,
    written: Sequence[WrittenSlice],
    k: int,
    backend: Backend,
    prefilter: Prefilter,
) -> tuple[np.ndarray, list[EdgeSet], np.ndarray]:
    """Backward top-k of every ``res(layer)`` feature over all mlp candidates at once — ``mlp(layer)``'s decoder
    (a CLT's own-layer slice, or an MLP SAE/transcoder) and every CLT slice written into ``layer`` — so ``s_mlp``
    is the best over all of them; edges are split back per source read layer. CLT edges carry
    ``written_layer = layer``. Returns ``(sims, edge sets, the stacked candidates)``."""
    parts: list[tuple[int, np.ndarray, np.ndarray | None, bool]] = []
    if mlp is not None:
        parts.append((layer, mlp.unit, None, mlp.architecture in CLT_ARCHITECTURES))
    parts.extend((w.source_layer, w.unit, w.index, True) for w in written)
    base = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
    sims, idx = topk_search(res.unit, base, k, backend=backend, prefilter=prefilter)
    n_t, kk = idx.shape
    rank = np.tile(np.arange(kk, dtype=np.int64), n_t)
    dst = np.repeat(np.arange(n_t, dtype=np.int64), kk)
    flat_i, flat_s = idx.reshape(-1), sims.reshape(-1).astype(np.float32)
    edge_sets, offset = [], 0
    for source_layer, unit, index, is_clt in parts:
        m = (flat_i >= offset) & (flat_i < offset + len(unit))
        local = flat_i[m] - offset
        edge_sets.append(
            EdgeSet(
                "mlp",
                source_layer,
                src=(index[local] if index is not None else local).astype(np.int64),
                dst=dst[m],
                sim=flat_s[m],
                target_rank=rank[m],
                source_rank=np.full(int(m.sum()), -1, dtype=np.int64),
                written_layer=layer if is_clt else None,
            )
        )
        offset += len(unit)
    return sims, edge_sets, base


def layer_controls(
    layer: int,
    res: np.ndarray | DecoderFile,
    preds: Mapping[str, np.ndarray | DecoderFile | None],
    s: dict[str, np.ndarray | None],
    th: Thresholds,
    null_rows: int,
) -> tuple[dict[str, Any], dict[str, float] | None]:
    """Per predecessor SAE of ``res(layer)``: the median top-1 score and its null (median, 99th, 99.9th
    percentile), as SAE-node properties ``{pred}_score_median``, ``{pred}_null_median`` …; plus the
    category rule and, for a null rule, the per-pair cuts (``None`` for the fixed rule)."""
    if th.null_quantile is not None and null_rows <= 0:
        raise InvalidInput(
            f"thresholds {th.rule} need the null (got null_rows = {null_rows}; leave it at the default {DEFAULT_NULL_ROWS})"
        )
    props: dict[str, Any] = {"category_rule": th.rule if s["res"] is not None else None}
    cuts: dict[str, float] = {}
    for pred, d in preds.items():
        score = s[pred]
        if d is None or score is None:
            continue
        props[f"{pred}_score_median"] = float(np.median(score))
        if null_rows > 0:
            seed = layer * 3 + ("res", "att", "mlp").index(pred)
            if isinstance(res, DecoderFile) and isinstance(d, DecoderFile):
                null = streamed_null_top1(res, d, rows=null_rows, seed=seed, tile_rows=DEFAULT_TILE_ROWS)
            else:
                assert isinstance(res, np.ndarray) and isinstance(d, np.ndarray)
                null = null_top1(res, d, rows=null_rows, seed=seed)
            summ = summarise_scores(null)
            props.update(
                {
                    f"{pred}_null_median": summ.median,
                    f"{pred}_null_p99": summ.p99,
                    f"{pred}_null_p999": summ.p999,
                    f"{pred}_null_n": summ.n,
                }
            )
            if th.null_quantile is not None:
                cuts[pred] = float(np.quantile(null, th.null_quantile))
    if th.null_quantile is None or s["res"] is None:
        fixed = {"res": th.res, "att": th.module, "mlp": th.module}
        props.update({f"cut_{p}": fixed[p] for p in preds if s[p] is not None} if s["res"] is not None else {})
        return props, None
    props.update({f"cut_{p}": c for p, c in cuts.items()})
    return props, cuts


def _as_list(a: np.ndarray, null_below_zero: bool = False) -> list[Any]:
    if null_below_zero:
        return [None if v < 0 else v for v in a.tolist()]
    return a.tolist()


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


def _timed_write(
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


def _sae_rows(
    manifest: AtlasManifest,
    d_model: int,
    sizes: dict[tuple[int, str], int],
    details: dict[tuple[int, str], dict[str, str]] | None = None,
) -> list[dict[str, Any]]:
    rows = []
    for e in manifest.saes:
        rows.append(
            {
                "key": sae_key(manifest.name, e.layer, e.module),
                "layer": e.layer,
                "module": e.module.value,
                "d_sae": sizes[(e.layer, e.module.value)],
                "d_in": d_model,
                "source": e.describe(),
                "neuronpedia_id": neuronpedia_id(e, manifest.base_dir),
                **(details or {}).get((e.layer, e.module.value), {}),  # hook_z SAEs: hook_name, w_o_source
            }
        )
    return rows


def _prepare(
    graph: Graph,
    manifest: AtlasManifest,
    opts: IngestOptions,
    d_model: int,
    sizes: dict[tuple[int, str], int],
    details: dict[tuple[int, str], dict[str, str]] | None = None,
) -> set[int]:
    """Write/refresh the metadata nodes; return the layers that a resumed run may skip."""
    name = manifest.name
    sha = manifest.sha256()
    existing = graph.read(W.GET_ATLAS, {"name": name})
    done: set[int] = set()
    if existing:
        ex = existing[0]
        stored = {(s["layer"], s["module"], s["d_sae"]) for s in ex["saes"] if s.get("layer") is not None}
        wanted = {(e.layer, e.module.value, sizes[(e.layer, e.module.value)]) for e in manifest.saes}
        if opts.resume:
            if ex["sha"] != sha or stored != wanted:
                raise InvalidInput(
                    f"atlas {name!r} in Neo4j was started from a different manifest; --resume can only finish the same one "
                    "(run without --resume to rebuild it from this manifest)"
                )
            rule = ex.get("rule") or f"fixed:{ex['t_res']:g}/{ex['t_mod']:g}"
            if (
                ex["k"] != opts.k
                or ex["t_res"] != opts.thresholds.res
                or ex["t_mod"] != opts.thresholds.module
                or rule != opts.thresholds.rule
            ):
                raise InvalidInput(
                    f"atlas {name!r} was started with k={ex['k']}, thresholds {rule}; "
                    f"--resume needs the same options (got k={opts.k}, thresholds {opts.thresholds.rule})"
                )
            done = set(ex["complete_layers"])
        elif stored != wanted:
            log.info("atlas %s exists with a different set of SAEs: dropping it first", name)
            maintenance.drop_atlas(graph, name, keep_steering_runs=True)  # a rebuild keeps the steering history
    graph.write(
        W.UPSERT_ATLAS,
        {
            "name": name,
            "model": manifest.model,
            "d_model": d_model,
            "n_layers": manifest.n_layers,
            "layers": manifest.layers,
            "sha": sha,
            "manifest_path": str(manifest.base_dir),
            "k": opts.k,
            "t_res": opts.thresholds.res,
            "t_mod": opts.thresholds.module,
            "rule": opts.thresholds.rule,
        },
    )
    if not opts.resume:
        done = set()
    graph.write(W.UPSERT_SAES, {"atlas": name, "rows": _sae_rows(manifest, d_model, sizes, details)})
    # UPSERT_SAES resets complete=false; restore the layers a resumed run keeps.
    for layer in sorted(done):
        graph.write(W.MARK_LAYER_COMPLETE, {"atlas": name, "layer": layer})
    return done


def ingest_atlas(
    manifest: AtlasManifest,
    graph: Graph,
    *,
    k: int = DEFAULT_K,
    resume: bool = False,
    thresholds: Thresholds | None = None,
    backend: Backend = "faiss",
    progress: bool = False,
    options: IngestOptions | None = None,
) -> IngestReport:
    """Ingest ``manifest`` into ``graph``; see the module docstring for the order and resume semantics."""
    opts = options or IngestOptions(
        k=k, thresholds=thresholds or Thresholds(), backend=backend, resume=resume, progress=progress
    )
    if opts.k < 1:
        raise InvalidInput(f"k = {opts.k} is not valid (use k ≥ 1; the default is {DEFAULT_K})")
    from tqdm.auto import tqdm

    details: dict[tuple[int, str], dict[str, str]] = {}
    cache = DecoderCache(0 if opts.ray else opts.decoder_cache_bytes)  # Ray tasks read their own decoders
    budget = opts.memory_budget or parse_memory_budget(IngestSettings().match_memory_budget)
    d_model, sizes = validate_atlas(
        manifest,
        progress=opts.progress,
        projections=opts.projections,
        details=details,
        cache=cache,
        stream_over=None if opts.ray else budget,
    )
    ceilings = ceiling_controls(manifest, d_model, opts.projections)
    graph.verify()
    ray_run = None
    if opts.ray:  # connect before anything is written: an unreachable cluster leaves the graph untouched
        from ingest import ray_matching

        ray_run = ray_matching.RayMatching(started_ray=ray_matching.connect(opts.ray, opts.gpu, opts.ray_num_cpus))
    t_start = time.perf_counter()
    writer: LayerWriter | None = None
    try:
        ensure_schema(graph)
        done = _prepare(graph, manifest, opts, d_model, sizes, details)
        cache.drop_layers({x for x in done if x + 1 in done or x + 1 not in manifest.layers})  # never matched again
        if ray_run is not None:
            ray_matching.submit(ray_run, manifest, [x for x in manifest.layers if x not in done], d_model, opts)
        run_id = f"{manifest.name}:{manifest.sha256()[:16]}"
        graph.write(
            W.UPSERT_RUN,
            {
                "atlas": manifest.name,
                "id": run_id,
                "k": opts.k,
                "backend": opts.backend,
                "resumed": int(bool(opts.resume)),
            },
        )
        report = IngestReport(manifest.name, [], [], 0, 0)
        clts = clt_entries(manifest)  # cross-layer transcoders: read layer → layout (written slices per layer)
        prev_res: Decoder | None = None
        bar = tqdm(manifest.layers, desc=f"ingest {manifest.name}", unit="layer", disable=not opts.progress)
        writer = LayerWriter(_timed_write(graph, manifest.name, opts, report, bar), opts.overlap_writes)
        for layer in bar:
            if layer in done:
                report.layers_skipped.append(layer)
                prev_res = None  # reloaded below if the next layer needs it
                continue
            tm = time.perf_counter()
            if ray_run is not None:
                result = ray_run.result(layer)
                report.match_s += time.perf_counter() - tm  # the wait for this layer's task
            elif (files := _files_to_stream(manifest, layer, d_model, sizes, budget, clts)) is not None:
                result = match_layer_streamed(
                    layer, files[0], files[1], opts.k, opts.thresholds, opts.null_rows, opts.stream_tile_rows
                )
                report.match_s += time.perf_counter() - tm
                report.streamed_layers.append(layer)
                prev_res = None  # an in-memory layer after this one loads res(L) itself
            else:
                dec, prev_res = layer_decoders(manifest, layer, d_model, opts.projections, cache, prev_res)
                written = written_slices(manifest, layer, d_model, clts) if clts else []
                result = match_layer(
                    layer,
                    dec,
                    prev_res,
                    opts.k,
                    opts.thresholds,
                    opts.backend,
                    opts.prefilter,
                    opts.null_rows,
                    written,
                )
                report.match_s += time.perf_counter() - tm
                prev_res = dec["res"]
            writer.submit(result)
        writer.finish()
        report.write_wait_s = writer.waited_s
        counts = graph.read(W.COUNT_ATLAS, {"atlas": manifest.name}, timeout=600)[0]
        report.n_features, report.n_edges = int(counts["features"]), int(counts["edges"])
        graph.write(
            W.MARK_ATLAS_COMPLETE, {"atlas": manifest.name, "n_features": report.n_features, "n_edges": report.n_edges}
        )
        for (layer, module), props in ceilings.items():
            graph.write(W.SET_SAE_CONTROLS, {"key": sae_key(manifest.name, layer, module), "props": props})
        summarise_controls(graph, manifest.name)
        graph.write(
            W.FINISH_RUN,
            {
                "id": run_id,
                "status": "complete",
                "n_features": report.n_features,
                "n_edges": report.n_edges,
                "seconds": time.perf_counter() - t_start,
            },
        )
        return report
    except DatabaseUnavailable as exc:
        raise DatabaseUnavailable(
            f"{' '.join(str(exc).split()).rstrip('.')}. The atlas {manifest.name!r} is left marked incomplete; once Neo4j answers again, finish it with `atlas ingest <atlas.toml> --resume`"
        ) from exc
    finally:
        if writer is not None:
            writer.close()  # a layer being written when something failed is finished (or fails) before we leave
        if ray_run is not None:
            ray_run.close()


def recategorize(graph: Graph, atlas: str, thresholds: Thresholds) -> dict[str, int]:
    """Recompute every ``res`` feature's category of a complete atlas from its stored scores with other
    thresholds (no matching, no decoders); the rule is stored on the ``Atlas`` node and, with its cuts, on
    each res ``SAE`` node. A null rule reads each pair's stored null quantile (0.99 or 0.999). Returns the
    count per category (``NO_CATEGORY``: features of layers without a ``res(L-1)`` SAE, left without one)."""
    state = graph.read(W.ATLAS_STATE, {"atlas": atlas})
    if not state:
        raise AtlasNotFound(atlas, known_atlases(graph))
    if not state[0]["complete"]:
        raise InvalidInput(
            f"atlas {atlas!r} is not completely ingested; finish it with `atlas ingest <atlas.toml> --resume` before recategorizing"
        )
    controls = {r["layer"]: r for r in graph.read(W.SAE_CONTROLS_FULL, {"atlas": atlas})}
    counts = dict.fromkeys((*CATEGORIES, NO_CATEGORY), 0)
    for layer in state[0]["layers"]:
        try:
            cuts = stored_cuts(controls.get(layer), thresholds.res, thresholds.module, thresholds.null_quantile)
        except InvalidInput as exc:
            raise InvalidInput(f"atlas {atlas!r}: {exc}") from None
        params = {"atlas": atlas, "layer": layer, "t_res": cuts["res"], "t_att": cuts["att"], "t_mlp": cuts["mlp"]}
        for row in graph.write(W.RECATEGORIZE_LAYER, params, timeout=600):
            counts[row["category"] or NO_CATEGORY] += int(row["n"])
        has_res = (controls.get(layer) or {}).get("res_score_median") is not None
        graph.write(
            W.SET_SAE_CONTROLS,
            {
                "key": sae_key(atlas, layer, "res"),
                "props": {
                    "category_rule": thresholds.rule if has_res else None,
                    **{f"cut_{p}": (v if has_res and v < NEVER else None) for p, v in cuts.items()},
                },
            },
        )
    graph.write(
        W.SET_ATLAS_THRESHOLDS,
        {"atlas": atlas, "t_res": thresholds.res, "t_mod": thresholds.module, "rule": thresholds.rule},
    )
    summarise_controls(graph, atlas)
    return counts
