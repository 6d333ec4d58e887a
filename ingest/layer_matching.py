"""Matching one layer, pure and Neo4j-free: its decoders in, its scores, categories, null controls and edges out.

:func:`match_layers` is the one loop over layers that the online path (``ingest.pipeline``), the bulk export
(``ingest.bulk``) and each Ray task (``ingest.ray_matching``) run: per layer it reads the decoders
(:func:`layer_inputs`: in memory, or streamed from the files when a pair is over the memory budget), matches
them (:func:`match_inputs`: the paper's decoder cosine, exact top-k both ways) and yields a :class:`LayerMatch`.
Matchers other than cosine (``ingest.matchers``, ``IngestOptions.matchers``) run in :func:`match_layer` on the
same pairs and add their own edge sets (``method`` = their name); scores and categories stay cosine's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ingest.controls import layer_controls
from ingest.decoders import Decoder, DecoderCache, WrittenSlice, clt_entries, layer_decoders, written_slices
from ingest.matchers import DEFAULT_MATCHERS, pair_cosines, registry
from ingest.matching import Backend, topk_both_ways, topk_search
from ingest.options import IngestOptions
from ingest.prefilter import Prefilter
from ingest.scores import EdgeSet, Thresholds, backward_edges, categorize, matcher_edges, residual_edges
from ingest.streaming import DEFAULT_TILE_ROWS, DecoderFile, streamable, streamed_topk
from queries.ids import Module
from saes.controls import DEFAULT_NULL_ROWS
from saes.manifest import AtlasManifest
from saes.weights import CLT_ARCHITECTURES

if TYPE_CHECKING:
    from saes.circuit_tracer import CLTLayout

log = logging.getLogger(__name__)


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
    matchers: Sequence[str] = DEFAULT_MATCHERS,
) -> LayerResult:
    """All matching of one layer: scores, null controls, categories and edges into ``res(layer)``.

    ``matchers``: cosine (always; scores and categories) and the others whose edges are added beside its own,
    on the res(L-1), att(L) and mlp(L) pairs (not on CLT slices: those stay cosine-only).

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
    extra = [m for m in matchers if m != "cosine"]
    if extra:
        pairs: list[tuple[str, int, Decoder]] = [("res", layer - 1, prev_res)] if prev_res is not None else []
        pairs += [
            (mod, layer, dec[mod])
            for mod in ("att", "mlp")
            if mod in dec and dec[mod].architecture not in CLT_ARCHITECTURES and not (mod == "mlp" and written)
        ]
        edges.extend(other_matcher_edges(extra, res, pairs, layer, k))
    return LayerResult(layer, features, edges, controls)


def other_matcher_edges(
    names: Sequence[str], res: Decoder, pairs: Sequence[tuple[str, int, Decoder]], layer: int, k: int
) -> list[EdgeSet]:
    """Edge sets of the matchers ``names`` for each (source module, source layer, decoder) pair into ``res``."""
    known = registry()
    out = []
    for name in names:
        m = known[name]
        for mod, src_layer, src in pairs:
            t = time.perf_counter()
            scores, idx = m.match(res.unit, src.unit, k, target_norms=res.norms, source_norms=src.norms)
            cos = pair_cosines(res.unit, src.unit, idx)
            out.append(matcher_edges(name, mod, src_layer, layer, scores, idx, cos))
            log.debug("layer %d %s←%s%d: %s in %.2fs", layer, "res", mod, src_layer, name, time.perf_counter() - t)
    return out


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


def files_to_stream(
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


@dataclass
class LayerInputs:
    """What matching layer ``layer`` reads: the unit decoders of res/att/mlp(L) by module and res(L-1) (None at the
    first layer), the CLT slices written into L; or, when ``files`` is set, the same decoders as files to stream."""

    layer: int
    decoders: dict[str, Decoder] = field(default_factory=dict)
    prev_res: Decoder | None = None
    written: list[WrittenSlice] = field(default_factory=list)
    files: dict[str, DecoderFile] | None = None
    prev_file: DecoderFile | None = None

    @property
    def streamed(self) -> bool:
        return self.files is not None


@dataclass
class LayerMatch:
    """One layer's matching as :func:`match_layers` yields it; ``seconds``: reading its decoders and matching them."""

    layer: int
    result: LayerResult
    seconds: float
    streamed: bool = False


def layer_inputs(
    manifest: AtlasManifest,
    layer: int,
    d_model: int,
    opts: IngestOptions,
    *,
    cache: DecoderCache | None = None,
    prev_res: Decoder | None = None,
    clts: dict[int, CLTLayout] | None = None,
    sizes: dict[tuple[int, str], int] | None = None,
    memory_budget: int | None = None,
) -> LayerInputs:
    """Read what matching ``layer`` needs: streamed files when ``sizes`` and ``memory_budget`` are given and the
    layer's largest pair is over the budget (and streamable), else decoders in memory (``prev_res``: res(L-1)
    when the caller still holds it)."""
    clts = clt_entries(manifest) if clts is None else clts
    if sizes is not None and memory_budget is not None:
        files = files_to_stream(manifest, layer, d_model, sizes, memory_budget, clts)
        if files is not None:
            return LayerInputs(layer, files=files[0], prev_file=files[1])
    dec, prev = layer_decoders(manifest, layer, d_model, opts.projections, cache, prev_res)
    written = written_slices(manifest, layer, d_model, clts) if clts else []
    return LayerInputs(layer, dec, prev, written)


def match_inputs(inputs: LayerInputs, opts: IngestOptions) -> LayerResult:
    """Match one layer's inputs with the paper's decoder cosine (the one matcher today)."""
    if inputs.files is not None:
        if any(m != "cosine" for m in opts.matchers):
            log.warning("layer %d is streamed (over the memory budget): only cosine matches it", inputs.layer)
        return match_layer_streamed(
            inputs.layer,
            inputs.files,
            inputs.prev_file,
            opts.k,
            opts.thresholds,
            opts.null_rows,
            opts.stream_tile_rows,
        )
    return match_layer(
        inputs.layer,
        inputs.decoders,
        inputs.prev_res,
        opts.k,
        opts.thresholds,
        opts.backend,
        opts.prefilter,
        opts.null_rows,
        inputs.written,
        opts.matchers,
    )


def match_layers(
    manifest: AtlasManifest,
    layers: Iterable[int],
    d_model: int,
    opts: IngestOptions,
    *,
    cache: DecoderCache | None = None,
    sizes: dict[tuple[int, str], int] | None = None,
    memory_budget: int | None = None,
) -> Iterator[LayerMatch]:
    """Match ``layers`` (increasing) of ``manifest`` one after the other, yielding each layer's :class:`LayerMatch`
    as soon as it is matched (the caller writes it before the next layer is read).

    ``cache``: decoders validation already read; ``sizes`` (validate_atlas's) with ``memory_budget`` (bytes): stream
    the layers whose largest pair is over it; without them every layer is matched in memory. res(L) read for one
    layer is kept as res(L-1) of the next when that is the next layer asked for."""
    clts = clt_entries(manifest)  # cross-layer transcoders: read layer → layout (written slices per layer)
    prev: Decoder | None = None  # res(L) of the layer just matched in memory
    prev_layer: int | None = None
    for layer in layers:
        t = time.perf_counter()
        inputs = layer_inputs(
            manifest,
            layer,
            d_model,
            opts,
            cache=cache,
            prev_res=prev if prev_layer == layer - 1 else None,
            clts=clts,
            sizes=sizes,
            memory_budget=memory_budget,
        )
        result = match_inputs(inputs, opts)
        seconds = time.perf_counter() - t
        prev, prev_layer = (None, None) if inputs.streamed else (inputs.decoders["res"], layer)
        yield LayerMatch(layer, result, seconds, inputs.streamed)
