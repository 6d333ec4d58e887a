"""Per-layer matching results → scores, categories and edge lists (pure numpy, no I/O).

For every ``res(L)`` feature: ``s_res``, ``s_att``, ``s_mlp`` are its top-1 cosines against ``res(L-1)``,
``att(L)``, ``mlp(L)`` (``None`` where that SAE is absent). Its category (paper §3.3):

- translated:  s_res ≥ t_res and max(s_att, s_mlp) <  t_mod
- processed:   s_res ≥ t_res and max(s_att, s_mlp) ≥ t_mod
- newborn:     s_res <  t_res and max(s_att, s_mlp) ≥ t_mod
- unexplained: s_res <  t_res and max(s_att, s_mlp) <  t_mod

Only a feature whose layer has a ``res(L-1)`` SAE gets a category (DESIGN.md): where ``s_res`` is
absent the category is absent too (``None``), never "low by default". An absent ``s_att``/``s_mlp``
counts as low. Thresholds are configurable; docs/ingest.md justifies the defaults.

Edges (``FLOWS_TO``, earlier → later): the backward top-k of each target from each predecessor SAE
(``target_rank`` = position), and for ``res(L-1) → res(L)`` also the forward top-k of each source
(``source_rank``). A pair found both ways is one edge carrying both ranks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from queries.domain import CATEGORIES, CATEGORY_MODULE_CUT, RESIDUAL_CUT


@dataclass(frozen=True)
class Thresholds:
    """``res``: how similar the residual predecessor must be to count as 'high' (paper's t_R = 0.5);
    ``module``: the same for attention/MLP predecessors (paper's Table 5 MLP cut, 0.25).

    ``null_quantile`` (``--thresholds null:0.999``) replaces both fixed cuts by, for each SAE pair, that
    quantile of the pair's null (top-1 cosines against a randomly rotated copy of the predecessor
    decoder, ``saes.controls``): "high" then means "higher than chance for these two SAEs would give in
    all but 1 of 1,000 features", a cut that adapts to width and dimension instead of being set by hand."""

    res: float = RESIDUAL_CUT
    module: float = CATEGORY_MODULE_CUT
    null_quantile: float | None = None

    @property
    def rule(self) -> str:
        """How categories are made, as stored on the Atlas and SAE nodes: ``fixed:0.5/0.25`` or ``null:0.999``."""
        return (
            f"null:{self.null_quantile:g}" if self.null_quantile is not None else f"fixed:{self.res:g}/{self.module:g}"
        )


def parse_thresholds(text: str, res: float = RESIDUAL_CUT, module: float = CATEGORY_MODULE_CUT) -> Thresholds:
    """``fixed`` (the ``res``/``module`` cuts) or ``null:Q`` with 0.5 ≤ Q < 1 (a quantile of each pair's null)."""
    from queries.errors import InvalidInput

    t = text.strip().lower()
    if t in ("fixed", ""):
        return Thresholds(res=res, module=module)
    if t.startswith("null:"):
        try:
            q = float(t.split(":", 1)[1])
        except ValueError:
            q = float("nan")
        if 0.5 <= q < 1.0:
            return Thresholds(res=res, module=module, null_quantile=q)
    raise InvalidInput(
        f"thresholds {text!r} are not valid (use 'fixed' for --t-res/--t-module, or 'null:Q' with 0.5 ≤ Q < 1, e.g. null:0.999)"
    )


@dataclass
class EdgeSet:
    """Edges from one source SAE into ``res(L)``; parallel arrays."""

    source_module: str
    source_layer: int
    src: np.ndarray  # int64 source indices
    dst: np.ndarray  # int64 target indices
    sim: np.ndarray  # float32
    target_rank: np.ndarray  # int64, -1 = not in the target's top-k
    source_rank: np.ndarray  # int64, -1 = not in the source's top-k
    written_layer: int | None = None  # cross-layer transcoder edges: the layer the source's slice writes into
    # Which matcher found them (ingest/matchers; None = cosine, stored as no property so cosine-only atlases are
    # unchanged) and its own score per edge (None for cosine, whose score is ``sim``).
    method: str | None = None
    score: np.ndarray | None = None
    distance: int = 1  # target layer − source layer for res → res edges (long range > 1); 0 for att/mlp(L) → res(L)

    def __len__(self) -> int:
        return int(self.src.shape[0])


def categorize(
    s_res: np.ndarray | None,
    s_att: np.ndarray | None,
    s_mlp: np.ndarray | None,
    n: int,
    th: Thresholds,
    cuts: dict[str, float] | None = None,
) -> np.ndarray:
    """Category names (object array [n]) from the three top-1 score arrays (None = SAE absent).

    Without a ``res(L-1)`` SAE (``s_res is None``) every entry is ``None``: the category is undefined.
    ``cuts`` (``{"res", "att", "mlp"}`` → cut) overrides the fixed thresholds per predecessor SAE (the
    null rule); a module is high when its own score reaches its own cut."""
    if s_res is None:
        return np.full(n, None, dtype=object)
    if cuts is None:
        cuts = {"res": th.res, "att": th.module, "mlp": th.module}
    high_res = s_res >= cuts["res"]
    mods = [s >= cuts[m] for m, s in (("att", s_att), ("mlp", s_mlp)) if s is not None]
    high_mod = np.any(np.stack(mods), axis=0) if mods else np.zeros(n, dtype=bool)
    translated, processed, newborn, unexplained = CATEGORIES
    out = np.full(n, unexplained, dtype=object)
    out[high_res & ~high_mod] = translated
    out[high_res & high_mod] = processed
    out[~high_res & high_mod] = newborn
    return out


def backward_edges(source_module: str, source_layer: int, sims: np.ndarray, idx: np.ndarray) -> EdgeSet:
    """Edges from a backward top-k ``[n_target, k]`` (row = target, entries = source indices)."""
    n_t, k = idx.shape
    return EdgeSet(
        source_module,
        source_layer,
        src=idx.reshape(-1).astype(np.int64),
        dst=np.repeat(np.arange(n_t, dtype=np.int64), k),
        sim=sims.reshape(-1).astype(np.float32),
        target_rank=np.tile(np.arange(k, dtype=np.int64), n_t),
        source_rank=np.full(n_t * k, -1, dtype=np.int64),
    )


def matcher_edges(
    method: str,
    source_module: str,
    source_layer: int,
    target_layer: int,
    scores: np.ndarray,
    idx: np.ndarray,
    cosines: np.ndarray,
) -> EdgeSet:
    """Edges one matcher found (``scores``/``idx`` [n_target, k], -1 = no candidate): ``sim`` is the pair's decoder
    cosine, ``score`` the matcher's own, ``target_rank`` its rank."""
    n_t, k = idx.shape
    keep = idx.reshape(-1) >= 0
    dist = target_layer - source_layer if source_module == "res" else 0
    return EdgeSet(
        source_module,
        source_layer,
        src=idx.reshape(-1)[keep].astype(np.int64),
        dst=np.repeat(np.arange(n_t, dtype=np.int64), k)[keep],
        sim=cosines.reshape(-1)[keep].astype(np.float32),
        target_rank=np.tile(np.arange(k, dtype=np.int64), n_t)[keep],
        source_rank=np.full(int(keep.sum()), -1, dtype=np.int64),
        method=method,
        score=scores.reshape(-1)[keep].astype(np.float32),
        distance=dist,
    )


def residual_edges(
    source_layer: int, bwd: tuple[np.ndarray, np.ndarray], fwd: tuple[np.ndarray, np.ndarray], n_sources: int
) -> EdgeSet:
    """Union of backward (target → its top-k sources) and forward (source → its top-k targets) pairs."""
    b_s, b_i = bwd
    f_s, f_i = fwd
    n_t, kb = b_i.shape
    n_s, kf = f_i.shape
    b_src = b_i.reshape(-1)
    b_dst = np.repeat(np.arange(n_t, dtype=np.int64), kb)
    f_src = np.repeat(np.arange(n_s, dtype=np.int64), kf)
    f_dst = f_i.reshape(-1)
    b_key = b_src * n_t + b_dst
    f_key = f_src * n_t + f_dst
    keys = np.union1d(b_key, f_key)  # sorted, unique
    sim = np.empty(keys.shape[0], dtype=np.float32)
    t_rank = np.full(keys.shape[0], -1, dtype=np.int64)
    s_rank = np.full(keys.shape[0], -1, dtype=np.int64)
    pos_f = np.searchsorted(keys, f_key)
    sim[pos_f] = f_s.reshape(-1)
    s_rank[pos_f] = np.tile(np.arange(kf, dtype=np.int64), n_s)
    pos_b = np.searchsorted(keys, b_key)
    sim[pos_b] = b_s.reshape(-1)  # same cosine as the forward value where both exist
    t_rank[pos_b] = np.tile(np.arange(kb, dtype=np.int64), n_t)
    return EdgeSet(
        "res", source_layer, src=keys // n_t, dst=keys % n_t, sim=sim, target_rank=t_rank, source_rank=s_rank
    )
