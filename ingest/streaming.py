"""Exact top-k between two decoders that never sit in memory whole: tiles read from memory-mapped safetensors.

A 262,144 × 4,608 fp32 decoder is 4.8 GB; matching two of them in memory needs both (plus their unit-normalised
copies). Here each decoder is a :class:`DecoderFile` — ``W_dec`` of a SAELens directory or a safetensors file,
read tile by tile (the encoder in the same file is never read) — and :func:`streamed_topk` walks query tiles × base tiles, normalising each tile on the fly with norms
computed in one streamed pass, and merging a running top-k per query row. Rows are read with positioned reads
(the safetensors header gives the byte range), not a memory map, so the file's pages never count as resident.

Peak extra memory: one query tile, one base tile and their ``tile × tile`` similarity block (with the default
8,192 rows at d = 4,096: 128 + 128 + 256 MiB), plus the ``[n, k]`` outputs. Results equal
:func:`ingest.matching.topk_search` on the same rows (float32 GEMM; ties may order differently).
``atlas ingest`` uses it for a layer whose largest SAE pair exceeds the memory budget
(``IngestSettings.match_memory_budget``, ``--memory-budget``) when every SAE of the layer is a plain decoder file
(:func:`streamable`); bench/bench_wide.py measures it (docs/ingest.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from queries.errors import SAEFileError

if TYPE_CHECKING:
    from saes.manifest import SAEEntry

DEFAULT_TILE_ROWS = 8_192
_DTYPES = {"F32": "<f4", "F16": "<f2", "BF16": "<u2"}  # bf16 is read as its bit pattern and widened
_PART_ROWS = 512


class DecoderFile:
    """``W_dec`` ``[d_sae, d]`` of a SAELens directory (or a .safetensors file), read tile by tile.

    Rows are read with plain positioned reads (the safetensors header gives the tensor's byte range), not through
    a memory map, so the pages read never stay counted in the process's resident set: peak RSS is the tiles."""

    def __init__(self, path: str | Path, tensor: str = "W_dec") -> None:
        p = Path(path)
        self.path = p / "sae_weights.safetensors" if p.is_dir() else p
        self.tensor = tensor
        try:
            with open(self.path, "rb") as f:
                n = int.from_bytes(f.read(8), "little")
                header = json.loads(f.read(n))
            meta = header[tensor]
            self._dtype = np.dtype(_DTYPES[meta["dtype"]])
            self._offset = 8 + n + int(meta["data_offsets"][0])
            shape = [int(x) for x in meta["shape"]]
        except KeyError as exc:
            raise SAEFileError(
                f"decoder {self.path}: no {tensor} tensor, or dtype {exc} is not streamable (use float32/float16)"
            ) from None
        except (OSError, ValueError) as exc:
            raise SAEFileError(
                f"decoder {self.path}: cannot open {tensor} for streaming ({type(exc).__name__}: {str(exc)[:160]})"
            ) from None
        if len(shape) != 2:
            raise SAEFileError(f"decoder {self.path}: {tensor} has shape {shape}, expected [d_sae, d]")
        self.shape = (shape[0], shape[1])
        self.hook_name: str | None = None  # the SAE's metadata.hook_name, when known (streamable sets it)
        self._bf16 = meta["dtype"] == "BF16"
        self._norms: np.ndarray | None = None

    def rows(self, a: int, b: int) -> np.ndarray:
        d = self.shape[1]
        t = np.fromfile(
            self.path, dtype=self._dtype, count=(b - a) * d, offset=self._offset + a * d * self._dtype.itemsize
        )
        if self._bf16:  # bf16 is the upper half of a float32
            return (t.astype(np.uint32) << 16).view(np.float32).reshape(b - a, d)
        return np.ascontiguousarray(t.reshape(b - a, d), dtype=np.float32)

    def norms(self, tile_rows: int = DEFAULT_TILE_ROWS) -> np.ndarray:
        """Row norms (one streamed pass, cached); a zero row is an error, as in ingest.decoders."""
        if self._norms is None:
            out = np.empty(self.shape[0], np.float32)
            for a in range(0, self.shape[0], tile_rows):
                t = self.rows(a, min(self.shape[0], a + tile_rows))
                out[a : a + len(t)] = np.linalg.norm(t.astype(np.float64), axis=1)
            if not np.isfinite(out).all() or (out == 0).any():
                bad = int(np.flatnonzero(~np.isfinite(out) | (out == 0))[0])
                raise SAEFileError(f"decoder {self.path}: row {bad} is zero or not finite (re-export the SAE)")
            self._norms = out
        return self._norms

    def unit_rows(self, a: int, b: int) -> np.ndarray:
        t = self.rows(a, b)
        t /= self.norms()[a:b, None]
        return t


def streamed_topk(
    queries: DecoderFile,
    base: DecoderFile,
    k: int,
    *,
    tile_rows: int = DEFAULT_TILE_ROWS,
    query_range: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """For every query row, its ``k`` most similar base rows by cosine: ``(sims float32 [n, k], idx int64 [n, k])``,
    sorted by descending similarity. ``query_range = (a, b)`` answers query rows ``a..b-1`` only (every base tile
    is still streamed)."""
    if queries.shape[1] != base.shape[1]:
        raise SAEFileError(
            f"decoders {queries.path} and {base.path} have widths {queries.shape[1]} and {base.shape[1]}"
        )
    q0, q1 = query_range or (0, queries.shape[0])
    n_q, n_b = q1 - q0, base.shape[0]
    k = min(k, n_b)
    sims = np.empty((n_q, k), np.float32)
    idx = np.empty((n_q, k), np.int64)
    for qa in range(0, n_q, tile_rows):
        q = queries.unit_rows(q0 + qa, q0 + min(n_q, qa + tile_rows))
        best_s = np.full((len(q), k), -np.inf, np.float32)
        best_i = np.zeros((len(q), k), np.int64)
        for ba in range(0, n_b, tile_rows):
            block = q @ base.unit_rows(ba, min(n_b, ba + tile_rows)).T
            kk = min(k, block.shape[1])
            np.negative(block, out=block)  # in place: partition for the smallest = the most similar
            for ra in range(0, len(q), _PART_ROWS):  # argpartition's int64 index array, a few rows at a time
                rb = min(len(q), ra + _PART_ROWS)
                part = np.argpartition(block[ra:rb], kk - 1, axis=1)[:, :kk]
                cand_s = np.concatenate([best_s[ra:rb], -np.take_along_axis(block[ra:rb], part, 1)], axis=1)
                cand_i = np.concatenate([best_i[ra:rb], part + ba], axis=1)
                keep = np.argpartition(-cand_s, k - 1, axis=1)[:, :k]
                best_s[ra:rb], best_i[ra:rb] = np.take_along_axis(cand_s, keep, 1), np.take_along_axis(cand_i, keep, 1)
            del block
        order = np.argsort(-best_s, axis=1, kind="stable")
        sims[qa : qa + len(q)] = np.take_along_axis(best_s, order, 1)
        idx[qa : qa + len(q)] = np.take_along_axis(best_i, order, 1)
    return sims, idx


def streamable(entry: SAEEntry, base_dir: str | Path, d_model: int | None = None) -> DecoderFile | None:
    """The entry's ``W_dec`` as a :class:`DecoderFile` when matching can read it straight from its file: a SAELens
    directory whose ``W_dec`` is ``[d_sae, d_model]`` as stored (its cfg.json agreeing), not an attention SAE on
    ``hook_z`` (rows mapped through W_O) nor a transcoder (hook checks). None: load it whole."""
    if entry.path is None:
        return None
    p = Path(entry.path) if Path(entry.path).is_absolute() else Path(base_dir) / entry.path
    if not p.is_dir():
        return None
    try:
        cfg = json.loads((p / "cfg.json").read_text())
        meta = cfg.get("metadata") or {}
        hook = meta.get("hook_name") or cfg.get("hook_name") or cfg.get("hook_point")
        arch = str(cfg.get("architecture") or "standard")
        shape = (int(cfg["d_sae"]), int(cfg.get("d_out") or cfg["d_in"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if str(hook or "").endswith("attn.hook_z") or "transcoder" in arch or meta.get("hook_name_out"):
        return None  # mapped through W_O / hook checks of transcoders: the in-memory path
    if not (p / "sae_weights.safetensors").is_file():
        return None
    try:
        f = DecoderFile(p)
    except SAEFileError:
        return None  # the in-memory loader reports what is wrong with it
    if f.shape != shape or (d_model is not None and f.shape[1] != d_model):
        return None
    f.hook_name = str(hook) if hook else None
    return f


def streamed_null_top1(
    target: DecoderFile, candidate: DecoderFile, *, rows: int, seed: int, tile_rows: int
) -> np.ndarray:
    """:func:`saes.controls.null_top1` with both decoders on disk: the same sampled target rows and rotations (the
    same random draws), the candidate streamed tile by tile."""
    from saes.controls import random_rotation

    rng = np.random.default_rng(seed)
    n = target.shape[0]
    need = rows if rows else n
    parts: list[np.ndarray] = []
    while sum(len(x) for x in parts) < need:
        left = need - sum(len(x) for x in parts)
        pick = np.sort(rng.choice(n, left, replace=False)) if n > left else np.arange(n)
        t = np.concatenate([target.unit_rows(int(i), int(i) + 1) for i in pick]) if n > left else target.unit_rows(0, n)
        tr = t @ random_rotation(t.shape[1], rng)
        best = np.full(len(tr), -np.inf, np.float32)
        for a in range(0, candidate.shape[0], tile_rows):
            block = tr @ candidate.unit_rows(a, min(candidate.shape[0], a + tile_rows)).T
            np.maximum(best, block.max(axis=1), out=best)
        parts.append(best)
    return np.concatenate(parts)
