"""Decoder loading, validation and L2 normalisation.

``validate_atlas`` checks every SAE of a manifest before anything is written (one clear
:class:`queries.errors.SAEFileError` per problem: missing/corrupt files, ``d_in`` ≠ d_model, NaN/inf,
all-zero rows). ``load_unit_decoder`` returns unit-norm float32 rows plus the original norms (stored as
``decoder_norm``). Matching needs cosines, and cosines of unit rows are inner products.

Attention SAEs on ``hook_z`` (Gemma Scope, Llama Scope) read the per-head space ``[n_heads·d_head]``. Their rows
are mapped into d_model through the model's ``W_O`` (``saes.projections``) before anything else: the mapped row
``d_z @ W_O`` is what the feature writes into the attention output, so it matches like any ``att`` feature;
``decoder_norm`` is the mapped norm and ``source_norm`` the original z-space norm (docs/ingest.md).

Cross-layer transcoders (circuit-tracer CLTs): the ``mlp`` entry of layer ``i`` naming a CLT folder holds the
features reading at ``i``; its ``Decoder`` is their slice into layer ``i``. What they write into a later atlas layer
``j`` is a :class:`WrittenSlice` (:func:`written_slices`), matched at layer ``j`` beside ``mlp(j)``. Validation
checks every such slice too (the folder's shapes from its headers, NaN/inf in every slice), so a bad CLT stops
ingest before anything is written. A feature whose slice into ``j`` is all zeros writes nothing there and is no
candidate at ``j``.

Reading each decoder once: validation must see every SAE before the first write, and matching needs them
again layer by layer. A :class:`DecoderCache` keeps the decoders validation already read (normalised, in
manifest order) up to a memory budget; ``load_unit_decoder`` takes them from it and reads from disk only
what did not fit (a whole small atlas never reads a file twice; a Gemma-sized one rereads the rest).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from queries.errors import SAEFileError
from queries.ids import Module
from saes.manifest import AtlasManifest, SAEEntry
from saes.projections import OutputProjections, is_hook_z
from saes.sources import SAEWeights, load_sae

if TYPE_CHECKING:
    from saes.circuit_tracer import CLTLayout

log = logging.getLogger(__name__)


@dataclass
class WrittenSlice:
    """What the CLT features reading at ``source_layer`` write into a later layer: unit rows ``[m, d]`` of the
    features ``index`` (those whose slice is not all zeros), with the slice norms."""

    source_layer: int
    unit: np.ndarray
    index: np.ndarray  # int64 feature indices of the rows
    norms: np.ndarray


@dataclass
class Decoder:
    entry: SAEEntry
    unit: np.ndarray  # float32 [d_sae, d_in], rows of norm 1
    norms: np.ndarray  # float32 [d_sae], the original row norms
    hook_name: str | None
    architecture: str
    source_norms: np.ndarray | None = None  # hook_z SAEs: the z-space row norms (``norms`` are the mapped ones)
    w_o_source: str | None = None  # hook_z SAEs: where W_O came from

    @property
    def d_sae(self) -> int:
        return int(self.unit.shape[0])


def check_decoder(entry: SAEEntry, w_dec: np.ndarray, d_model: int) -> np.ndarray:
    """Validate a decoder and return its row norms (float64). Raises SAEFileError naming the problem."""
    label = f"{entry.layer}-{entry.module.value} ({entry.describe()})"
    if w_dec.ndim != 2:
        raise SAEFileError(f"SAE {label}: W_dec has {w_dec.ndim} dimensions, expected 2 ([d_sae, d_in])")
    d_in = int(w_dec.shape[1])
    if d_in != d_model:
        hint = (
            " — attention SAEs on hook_z read the per-head space; their cfg.json must name metadata.hook_name = "
            "'blocks.L.attn.hook_z' so that ingest maps them through W_O"
            if d_in != d_model and entry.module.value == "att"
            else ""
        )
        raise SAEFileError(
            f"SAE {label}: d_in = {d_in} but the atlas's d_model = {d_model} (every SAE must read the d_model space{hint})"
        )
    finite = np.isfinite(w_dec).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise SAEFileError(
            f"SAE {label}: decoder row(s) {', '.join(map(str, bad[:5]))}{'…' if len(bad) > 5 else ''} contain NaN/inf "
            f"({len(bad)} row(s)); the file is corrupt or training diverged — re-export the SAE"
        )
    norms = np.linalg.norm(w_dec.astype(np.float64, copy=False), axis=1)
    zero = norms == 0
    if zero.any():
        bad = np.flatnonzero(zero)
        raise SAEFileError(
            f"SAE {label}: decoder row(s) {', '.join(map(str, bad[:5]))}{'…' if len(bad) > 5 else ''} are all zeros "
            f"({len(bad)} row(s)); a zero direction has no cosine — drop or re-initialise those features"
        )
    return norms


def atlas_d_model(manifest: AtlasManifest, first: SAEWeights | None = None) -> int | None:
    return manifest.d_model if manifest.d_model is not None else (first.d_in if first is not None else None)


# What a transcoder at module mlp of layer L may read (the MLP's input, before or after ln2) and must write.
TRANSCODER_INPUTS = ("ln2.hook_normalized", "hook_resid_mid", "hook_mlp_in", "mlp.hook_in", "hook_resid_pre")


def check_transcoder_hooks(entry: SAEEntry, w: SAEWeights) -> None:
    """A transcoder writes the MLP output, so it matches as an ``mlp`` feature of the layer it reads and writes;
    anything else is one SAEFileError naming the hooks and the module."""
    layer = entry.layer
    want_out = f"blocks.{layer}.hook_mlp_out"
    ins = [f"blocks.{layer}.{h}" for h in TRANSCODER_INPUTS]
    ok_in = w.hook_name is None or w.hook_name in ins
    ok_out = w.hook_name_out is None or w.hook_name_out == want_out
    if entry.module is not Module.MLP or not ok_in or not ok_out:
        raise SAEFileError(
            f"SAE {entry.layer}-{entry.module.value} ({entry.describe()}) is a transcoder reading {w.hook_name} and writing "
            f"{w.hook_name_out}, which disagree with its place at module {entry.module.value!r} of layer {layer} "
            f'(a transcoder sits at module = "mlp" of the layer whose MLP it replaces: it reads one of {", ".join(ins)} '
            f"and writes {want_out})"
        )


def to_model_space(
    entry: SAEEntry, w: SAEWeights, d_model: int | None, projections: OutputProjections | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The decoder in d_model space: ``W_dec`` itself, or for a ``hook_z`` SAE ``W_dec @ W_O`` with the z-space
    row norms. Raises SAEFileError for a hook_z SAE without W_O, at a module other than att, or of the wrong width."""
    if w.is_transcoder:
        check_transcoder_hooks(entry, w)
    if not is_hook_z(w.hook_name):
        return w.W_dec, None
    label = f"{entry.layer}-{entry.module.value} ({entry.describe()})"
    if entry.module is not Module.ATT:
        raise SAEFileError(
            f'SAE {label} reads {w.hook_name}, an attention hook, but the manifest puts it at module {entry.module.value!r} (use module = "att")'
        )
    if projections is None:
        raise SAEFileError(
            f"SAE {label} reads {w.hook_name} (the per-head space, d_in = {w.d_in}); matching maps its rows into d_model through "
            "W_O of the atlas's model, and no model was given (ingest with `atlas ingest`, which loads the manifest's model, "
            "or pass IngestOptions(projections=steering.model.model_projections(model)))"
        )
    w_o = projections(entry.layer)
    if w_o.shape[0] != w.d_in or (d_model is not None and w_o.shape[1] != d_model):
        raise SAEFileError(
            f"SAE {label} reads d_in = {w.d_in}, but W_O of layer {entry.layer} from {projections.source} is {list(w_o.shape)} "
            f"(expected [{w.d_in}, {d_model}]); the SAE was trained on another model than the atlas's"
        )
    source_norms = np.linalg.norm(w.W_dec.astype(np.float64, copy=False), axis=1).astype(np.float32)
    return np.ascontiguousarray(w.W_dec @ w_o, dtype=np.float32), source_norms


class DecoderCache:
    """Unit decoders validation has read, kept for matching up to ``max_bytes`` (each is taken out once)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0
        self._items: dict[tuple[int, str], Decoder] = {}

    def fits(self, nbytes: int) -> bool:
        return self.used + nbytes <= self.max_bytes

    def offer(self, dec: Decoder) -> None:
        self._items[(dec.entry.layer, dec.entry.module.value)] = dec
        self.used += int(dec.unit.nbytes)

    def take(self, entry: SAEEntry) -> Decoder | None:
        dec = self._items.pop((entry.layer, entry.module.value), None)
        if dec is not None:
            self.used -= int(dec.unit.nbytes)
        return dec

    def drop_layers(self, layers: set[int]) -> None:
        """Forget decoders of layers that will not be matched (e.g. those a resumed ingest skips)."""
        for key in [k for k in self._items if k[0] in layers]:
            self.used -= int(self._items.pop(key).unit.nbytes)


def clt_entries(manifest: AtlasManifest) -> dict[int, CLTLayout]:
    """``{read layer: layout}`` of the manifest's mlp entries that name a cross-layer transcoder folder."""
    from saes.circuit_tracer import clt_layout, is_clt_folder

    out = {}
    for e in manifest.saes:
        if e.module is Module.MLP and e.path is not None:
            p = Path(e.path) if Path(e.path).is_absolute() else Path(manifest.base_dir) / e.path
            if is_clt_folder(p):
                out[e.layer] = clt_layout(p, e.label)
    return out


def written_slices(
    manifest: AtlasManifest, layer: int, d_model: int, clts: dict[int, CLTLayout] | None = None
) -> list[WrittenSlice]:
    """What CLT features reading at earlier atlas layers write into ``layer`` (one slice per CLT read layer
    ``i < layer`` whose CLT spans ``layer``), checked like any decoder (d_model, NaN/inf); all-zero rows left out."""
    from saes.circuit_tracer import clt_slice

    out = []
    for i, layout in sorted((clts if clts is not None else clt_entries(manifest)).items()):
        if not i < layer < layout.n_layers:
            continue
        entry = manifest.entry(i, Module.MLP)
        assert entry is not None
        w = clt_slice(layout, i, layer)
        if w.shape[1] != d_model:
            raise SAEFileError(
                f"SAE {entry.label} ({entry.describe()}): its slice into layer {layer} is {w.shape[1]} wide but the "
                f"atlas's d_model = {d_model}"
            )
        if not np.isfinite(w).all():
            bad = np.flatnonzero(~np.isfinite(w).all(axis=1))
            raise SAEFileError(
                f"SAE {entry.label} ({entry.describe()}): what feature(s) {', '.join(map(str, bad[:5]))} write into "
                f"layer {layer} contains NaN/inf; the file is corrupt or training diverged — re-export the CLT"
            )
        norms = np.linalg.norm(w.astype(np.float64), axis=1)
        keep = np.flatnonzero(norms > 0)
        unit = w[keep] / norms[keep, None].astype(np.float32)
        out.append(WrittenSlice(i, np.ascontiguousarray(unit, np.float32), keep.astype(np.int64), norms[keep]))
    return out


def validate_atlas(
    manifest: AtlasManifest,
    progress: bool = False,
    projections: OutputProjections | None = None,
    details: dict[tuple[int, str], dict[str, str]] | None = None,
    cache: DecoderCache | None = None,
    stream_over: int | None = None,
) -> tuple[int, dict[tuple[int, str], int]]:
    """Load and check every SAE (decoders only); returns ``(d_model, {(layer, module): d_sae})``.

    Synthetic sources are checked from their spec (they are finite and non-zero by construction). ``details``,
    when given, receives the ``hook_name`` of every SAE that names one, and ``w_o_source`` of every hook_z SAE
    (stored on its SAE node). With a ``cache``, the decoders read here are kept (normalised) for
    :func:`load_unit_decoder` while they fit. A decoder file larger than half of ``stream_over`` bytes that can be
    streamed (:func:`ingest.streaming.streamable`) is checked by one streamed pass instead of being loaded whole.
    """
    from tqdm.auto import tqdm

    from ingest.streaming import streamable

    d_model = manifest.d_model
    sizes: dict[tuple[int, str], int] = {}
    for entry in tqdm(manifest.saes, desc="checking SAEs", unit="sae", disable=not progress):
        if entry.synthetic is not None:
            d_in = entry.synthetic.d_in
            if d_model is None:
                d_model = d_in
            if d_in != d_model:
                raise SAEFileError(
                    f"SAE {entry.label} ({entry.describe()}): d_in = {d_in} but the atlas's d_model = {d_model} (every SAE must read the d_model space)"
                )
            sizes[(entry.layer, entry.module.value)] = entry.synthetic.d_sae
            continue
        f = streamable(entry, manifest.base_dir, d_model) if stream_over is not None else None
        if f is not None and stream_over is not None and 2 * f.shape[0] * f.shape[1] * 4 > stream_over:
            f.norms()  # NaN/inf or an all-zero row: one SAEFileError, as below
            d_model = f.shape[1] if d_model is None else d_model
            sizes[(entry.layer, entry.module.value)] = f.shape[0]
            if details is not None and f.hook_name:
                details[(entry.layer, entry.module.value)] = {"hook_name": f.hook_name}
            continue
        w = load_sae(entry, manifest.base_dir, decoder_only=True)
        w_dec, source_norms = to_model_space(entry, w, d_model, projections)
        if d_model is None:
            d_model = int(w_dec.shape[1])
        norms = check_decoder(entry, w_dec, d_model)
        sizes[(entry.layer, entry.module.value)] = w.d_sae
        if cache is not None and cache.fits(w_dec.size * 4):  # kept as float32
            cache.offer(_unit(entry, w, w_dec, norms, source_norms, projections))
        if source_norms is not None and details is not None and projections is not None:
            details[(entry.layer, entry.module.value)] = {
                "hook_name": str(w.hook_name),
                "w_o_source": projections.source,
            }
        elif details is not None and w.hook_name:  # every SAE's hook is kept on its node (Neuronpedia exports name it)
            details[(entry.layer, entry.module.value)] = {"hook_name": str(w.hook_name)}
    assert d_model is not None  # a manifest has at least one SAE
    clts = clt_entries(manifest)
    for layer in manifest.layers:  # every slice a CLT writes into a later atlas layer is checked before any write
        if any(i < layer for i in clts):
            written_slices(manifest, layer, d_model, clts)
    return d_model, sizes


def load_unit_decoder(
    entry: SAEEntry,
    base_dir: Path,
    d_model: int,
    projections: OutputProjections | None = None,
    cache: DecoderCache | None = None,
) -> Decoder:
    """One SAE's decoder (mapped through W_O for hook_z SAEs), validated and L2-normalised: from ``cache`` when
    validation kept it, else read and checked now."""
    if cache is not None and (dec := cache.take(entry)) is not None:
        return dec
    w = load_sae(entry, base_dir, decoder_only=True)
    w_dec, source_norms = to_model_space(entry, w, d_model, projections)
    return _unit(entry, w, w_dec, check_decoder(entry, w_dec, d_model), source_norms, projections)


def _unit(
    entry: SAEEntry,
    w: SAEWeights,
    w_dec: np.ndarray,
    norms: np.ndarray,
    source_norms: np.ndarray | None,
    projections: OutputProjections | None,
) -> Decoder:
    unit = w_dec
    unit /= norms.astype(np.float32)[:, None]  # in place: decoders can be GBs
    return Decoder(
        entry=entry,
        unit=np.ascontiguousarray(unit, dtype=np.float32),
        norms=norms.astype(np.float32),
        hook_name=w.hook_name,
        architecture=w.architecture,
        source_norms=source_norms,
        w_o_source=projections.source if source_norms is not None and projections is not None else None,
    )


def layer_decoders(
    manifest: AtlasManifest,
    layer: int,
    d_model: int,
    projections: OutputProjections | None = None,
    cache: DecoderCache | None = None,
    prev_res: Decoder | None = None,
) -> tuple[dict[str, Decoder], Decoder | None]:
    """What matching layer L needs: the unit decoders of res/att/mlp(L) by module, and res(L-1) (``prev_res``
    when the caller still holds it from the previous layer; None at the first layer)."""
    dec = {
        m.value: load_unit_decoder(e, manifest.base_dir, d_model, projections, cache)
        for m in Module
        if (e := manifest.entry(layer, m)) is not None
    }
    if prev_res is None and layer - 1 in manifest.layers:
        prev_entry = manifest.entry(layer - 1, Module.RES)
        assert prev_entry is not None  # the manifest guarantees a gap-free residual chain
        prev_res = load_unit_decoder(prev_entry, manifest.base_dir, d_model, projections, cache)
    return dec, prev_res
