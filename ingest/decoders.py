"""Decoder loading, validation and L2 normalisation.

``validate_atlas`` checks every SAE of a manifest before anything is written (one clear
:class:`queries.errors.SAEFileError` per problem: missing/corrupt files, ``d_in`` ≠ d_model, NaN/inf,
all-zero rows). ``load_unit_decoder`` returns unit-norm float32 rows plus the original norms (stored as
``decoder_norm``). Matching needs cosines, and cosines of unit rows are inner products.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from queries.errors import SAEFileError
from saes.manifest import AtlasManifest, SAEEntry
from saes.sources import SAEWeights, load_sae

log = logging.getLogger(__name__)


@dataclass
class Decoder:
    entry: SAEEntry
    unit: np.ndarray  # float32 [d_sae, d_in], rows of norm 1
    norms: np.ndarray  # float32 [d_sae], the original row norms
    hook_name: str | None
    architecture: str

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
            " — attention SAEs on hook_z read the per-head space, not d_model; use SAEs on the attention output (hook_attn_out)"
            if d_in != d_model and entry.module.value == "att"
            else ""
        )
        raise SAEFileError(f"SAE {label}: d_in = {d_in} but the atlas's d_model = {d_model} (every SAE must read the d_model space{hint})")
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


def validate_atlas(manifest: AtlasManifest, progress: bool = False) -> tuple[int, dict[tuple[int, str], int]]:
    """Load and check every SAE (decoders only); returns ``(d_model, {(layer, module): d_sae})``.

    Synthetic sources are checked from their spec (they are finite and non-zero by construction).
    """
    from tqdm.auto import tqdm

    d_model = manifest.d_model
    sizes: dict[tuple[int, str], int] = {}
    for entry in tqdm(manifest.saes, desc="checking SAEs", unit="sae", disable=not progress):
        if entry.synthetic is not None:
            d_in = entry.synthetic.d_in
            if d_model is None:
                d_model = d_in
            if d_in != d_model:
                raise SAEFileError(f"SAE {entry.label} ({entry.describe()}): d_in = {d_in} but the atlas's d_model = {d_model} (every SAE must read the d_model space)")
            sizes[(entry.layer, entry.module.value)] = entry.synthetic.d_sae
            continue
        w = load_sae(entry, manifest.base_dir, decoder_only=True)
        if d_model is None:
            d_model = w.d_in
        check_decoder(entry, w.W_dec, d_model)
        sizes[(entry.layer, entry.module.value)] = w.d_sae
    assert d_model is not None  # a manifest has at least one SAE
    return d_model, sizes


def load_unit_decoder(entry: SAEEntry, base_dir: Path, d_model: int) -> Decoder:
    """Load one SAE's decoder, validate it and L2-normalise its rows."""
    w = load_sae(entry, base_dir, decoder_only=True)
    norms = check_decoder(entry, w.W_dec, d_model)
    unit = w.W_dec
    unit /= norms.astype(np.float32)[:, None]  # in place: decoders can be GBs
    return Decoder(entry=entry, unit=np.ascontiguousarray(unit, dtype=np.float32), norms=norms.astype(np.float32), hook_name=w.hook_name, architecture=w.architecture)
