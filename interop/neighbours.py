"""Neighbours on demand: the top-k decoder cosines of one feature against any SAE, computed from the SAE files.

The stored ``FLOWS_TO`` edges only link adjacent modules (``res(L-1)→res(L)``, ``att/mlp(L)→res(L)``) and
keep k candidates; ``similar`` answers what Neuronpedia offers across sources: the nearest decoder
directions in *any* SAE of the atlas, or of another atlas of the same model (e.g. another width). Both
SAEs are found through their atlas's manifest (saes.locate: the folder recorded at ingest, then the
cache), their decoders loaded with ``decoder_only`` and L2-normalised, and the target's rows put in a FAISS
``IndexFlatIP`` (exact inner product = cosine). Loaded decoders and indexes are kept per process (LRU of
``CACHE_SAES``), so only the first query against an SAE pays for reading it.

Bad input, one clear error each: an SAE key that is not ``atlas/{layer}-{module}``, an atlas or SAE that does
not exist, atlases of different models, SAEs of different widths of the stream (d_in), k out of range.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from queries.atlases import atlas_info, known_atlases
from queries.db import Graph
from queries.errors import AtlasNotFound, FeatureNotFound, InvalidInput
from queries.ids import Module, feature_uid, parse_uid, sae_key
from saes.locate import find_manifest
from saes.sources import load_sae

log = logging.getLogger(__name__)

CACHE_SAES = 6
MAX_K = 1_000
_SAE_KEY_RE = re.compile(r"^(?P<atlas>[a-z0-9][a-z0-9-]*)/(?P<layer>\d+)-(?P<module>[a-z]+)$")


@dataclass(frozen=True)
class Neighbour:
    uid: str
    index: int
    cosine: float


@dataclass
class SimilarResult:
    uid: str
    sae: str
    d_in: int
    neighbours: list[Neighbour]
    seconds: float
    cold: bool  # the target SAE had to be loaded (not in this process's cache)


@dataclass
class _Decoder:
    key: str
    unit: np.ndarray  # float32 [d_sae, d_in], rows of norm 1 (zero rows stay zero)
    index: Any = None  # faiss.IndexFlatIP over unit, built on first use as a target

    def faiss_index(self) -> Any:
        if self.index is None:
            import faiss

            self.index = faiss.IndexFlatIP(self.unit.shape[1])
            self.index.add(self.unit)
        return self.index


_cache: OrderedDict[tuple[str, str], _Decoder] = OrderedDict()
_lock = threading.Lock()


def parse_sae_key(text: str) -> tuple[str, int, Module]:
    m = _SAE_KEY_RE.match((text or "").strip())
    if not m:
        raise InvalidInput(
            f"SAE {text!r} is not valid (expected '{{atlas}}/{{layer}}-{{module}}', e.g. 'smollm2-demo/11-res')"
        )
    return m["atlas"], int(m["layer"]), Module.parse(m["module"])


def _decoder(atlas: str, info: dict[str, Any], layer: int, module: Module) -> tuple[_Decoder, bool]:
    key = sae_key(atlas, layer, module)
    version = str(info.get("manifest_sha256") or "")
    with _lock:
        hit = _cache.get((key, version))
        if hit is not None:
            _cache.move_to_end((key, version))
            return hit, False
    manifest = find_manifest(atlas, recorded=info.get("manifest_path"), expected_sha256=info.get("manifest_sha256"))
    entry = manifest.entry(layer, module)
    if entry is None:
        have = ", ".join(f"{e.layer}-{e.module.value}" for e in manifest.saes)
        raise InvalidInput(f"atlas {atlas!r} has no SAE {layer}-{module.value} (its SAEs: {have})")
    w = load_sae(entry, manifest.base_dir, decoder_only=True).W_dec.astype(np.float32, copy=False)
    norms = np.linalg.norm(w, axis=1, keepdims=True)
    unit = np.ascontiguousarray(w / np.where(norms > 0, norms, 1.0), dtype=np.float32)
    dec = _Decoder(key, unit)
    with _lock:
        _cache[(key, version)] = dec
        while len(_cache) > CACHE_SAES:
            _cache.popitem(last=False)
    return dec, True


def atlases_of(uid: str, sae: str, atlas: str | None = None) -> tuple[str, str]:
    """The atlases a ``similar`` call reads: the feature's and the target SAE's (validates both ids)."""
    return parse_uid(uid, atlas).atlas, parse_sae_key(sae)[0]


def similar_from(
    infos: Mapping[str, dict[str, Any] | None],
    uid: str,
    sae: str,
    k: int = 10,
    *,
    atlas: str | None = None,
    known: list[str] | None = None,
) -> SimilarResult:
    """``similar`` given the Atlas rows (queries.atlases.atlas_info) of the atlases involved: no database access."""
    t0 = time.perf_counter()
    if not 1 <= k <= MAX_K:
        raise InvalidInput(f"k {k} is out of range (valid: 1–{MAX_K})")
    ref = parse_uid(uid, atlas)
    t_atlas, t_layer, t_module = parse_sae_key(sae)
    for name in (ref.atlas, t_atlas):
        if infos.get(name) is None:
            raise AtlasNotFound(name, known)
    src_info, dst_info = infos[ref.atlas] or {}, infos[t_atlas] or {}
    if (src_info.get("model") or "") != (dst_info.get("model") or ""):
        raise InvalidInput(
            f"atlas {ref.atlas!r} is of model {src_info.get('model')!r} but {t_atlas!r} of {dst_info.get('model')!r} "
            "(decoder directions compare only within one model; pick an SAE of an atlas of the same model)"
        )
    src, _ = _decoder(ref.atlas, src_info, ref.layer, ref.module)
    if ref.index >= src.unit.shape[0]:
        raise FeatureNotFound(
            ref.uid,
            f"feature {ref.uid!r} does not exist: SAE {src.key} has {src.unit.shape[0]} features (0–{src.unit.shape[0] - 1})",
        )
    dst, cold = _decoder(t_atlas, dst_info, t_layer, t_module)
    if dst.unit.shape[1] != src.unit.shape[1]:
        raise InvalidInput(
            f"SAE {dst.key} reads d_in = {dst.unit.shape[1]} but {src.key} reads d_in = {src.unit.shape[1]} "
            "(similar compares decoder rows of the same width; pick an SAE on a stream of the same d_model)"
        )
    same = dst.key == src.key
    want = min(k + (1 if same else 0), dst.unit.shape[0])
    scores, idx = dst.faiss_index().search(src.unit[ref.index : ref.index + 1], want)
    out: list[Neighbour] = []
    for s, i in zip(scores[0].tolist(), idx[0].tolist()):
        if i < 0 or (same and i == ref.index):
            continue
        out.append(Neighbour(feature_uid(t_atlas, t_layer, t_module, i), i, float(s)))
    return SimilarResult(ref.uid, dst.key, int(src.unit.shape[1]), out[:k], time.perf_counter() - t0, cold)


def similar(graph: Graph, uid: str, sae: str, k: int = 10, *, atlas: str | None = None) -> SimilarResult:
    """The ``k`` features of SAE ``sae`` whose decoder directions are nearest (cosine) to feature ``uid``'s (the query
    feature itself excluded when ``sae`` is its own SAE)."""
    names = atlases_of(uid, sae, atlas)
    infos = {n: atlas_info(graph, n) for n in names}
    return similar_from(infos, uid, sae, k, atlas=atlas, known=known_atlases(graph))
