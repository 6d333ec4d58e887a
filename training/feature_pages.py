"""Per-feature page data, computed once after training (or for any ingested atlas) and stored, never on page load.

For every feature of every SAE of an atlas, from one streamed forward pass over held-out tokens (the same
held-out split and packing as the label pass, :func:`training.activations.forward_batches`):

- **density**: on how many held-out tokens it fires (the firing density is that over all held-out tokens) and
  the histogram of its non-zero activation values (``act_bins`` equal bins over (0, max]); per SAE, the
  histogram of log10 firing density over its features (where this feature sits among its SAE's);
- **examples**: the ``n_top`` strongest activations and ``per_quantile`` samples from each of ``n_quantiles``
  quantile groups of its non-zero activations (equal counts by rank, sampled with a fixed seed), each as a
  window of tokens around the max token with the feature's activation at every token of the window;
- **logit lens**: the ``logit_top`` most positive and most negative tokens of ``W_U · norm(d)`` for the unit
  decoder direction ``d``, and the histogram of all vocabulary logit weights.

The final norm is applied as the model applies it to a residual direction, up to one positive scalar: RMSNorm
multiplies by its weight (Gemma: 1 + weight), LayerNorm centres (a linear map of ``d``) and multiplies by its
weight. The 1/rms (1/std) factor is left out: it depends on the whole residual vector at that token, not on
``d``, and it scales every logit of the direction by the same positive number, so the ranking, the signs and
the histogram's shape do not change. Norm biases add the same vector whatever ``d`` is, so they are left out too.

Results live in ``feature_pages.jsonl`` beside each SAE (one compact JSON object per feature: the payload the
API serves) and on the Feature nodes as one string property ``page`` (Cypher in :mod:`queries.feature_pages`);
writing, caching and publishing them is ``training.feature_pages_publish``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from queries.errors import InvalidInput

if TYPE_CHECKING:
    from saes.weights import SAEWeights
    from steering.model import LoadedModel
    from training.corpus import Chunk

log = logging.getLogger(__name__)

PAGES_FILE = "feature_pages.jsonl"
PAGE_VERSION = 1


@dataclass(frozen=True)
class PageOptions:
    """What a page holds; the defaults bound a page to ~25 examples of 16 tokens (a few kB of JSON)."""

    window_left: int = 10
    window_right: int = 5
    n_top: int = 5
    n_quantiles: int = 4
    per_quantile: int = 5
    act_bins: int = 16
    logit_top: int = 10
    logit_bins: int = 24
    density_bins: int = 20  # log10-density bins per SAE over [-7, 0]
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_top", "n_quantiles", "per_quantile", "act_bins", "logit_top", "logit_bins", "density_bins"):
            if getattr(self, name) < 1:
                raise InvalidInput(f"{name} {getattr(self, name)} is not valid (valid: ≥ 1)")
        if self.window_left < 0 or self.window_right < 0:
            raise InvalidInput("window_left and window_right must be ≥ 0")


@dataclass
class SparseCodes:
    """The non-zero activations of one SAE over the held-out tokens, as COO triples (token, feature, value)."""

    d_sae: int
    tokens: list[np.ndarray] = field(default_factory=list)
    features: list[np.ndarray] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)

    def add(self, acts: np.ndarray, offset: int) -> None:
        t, f = np.nonzero(acts)
        self.tokens.append((t + offset).astype(np.int64))
        self.features.append(f.astype(np.int32))
        self.values.append(acts[t, f].astype(np.float32))

    def add_topk(self, vals: Any, idx: Any, offset: int) -> None:
        """The same from TopK codes ``vals``/``idx`` ``[tokens, k]`` (torch or numpy), as the trainer's held-out
        loop has them (training.train: ``top.update(vals[:n], idx[:n], offset)``): no dense pass needed."""
        v = np.asarray(vals.cpu() if hasattr(vals, "cpu") else vals, dtype=np.float32)
        i = np.asarray(idx.cpu() if hasattr(idx, "cpu") else idx)
        t, j = np.nonzero(v > 0)
        self.tokens.append((t + offset).astype(np.int64))
        self.features.append(i[t, j].astype(np.int32))
        self.values.append(v[t, j])

    def by_feature(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(starts [d_sae + 1], tokens, values)``: feature f's entries are ``[starts[f], starts[f+1])``, tokens ascending."""
        tok = np.concatenate(self.tokens) if self.tokens else np.zeros(0, np.int64)
        feat = np.concatenate(self.features) if self.features else np.zeros(0, np.int32)
        val = np.concatenate(self.values) if self.values else np.zeros(0, np.float32)
        order = np.lexsort((tok, feat))
        starts = np.searchsorted(feat[order], np.arange(self.d_sae + 1))
        return starts, tok[order], val[order]


def _sig(x: float, digits: int = 3) -> float:
    return float(f"{x:.{digits}g}") if math.isfinite(x) else 0.0


def norm_direction(loaded: LoadedModel) -> tuple[np.ndarray, str]:
    """``(gain [d_model], kind)`` of the model's final norm; ``kind`` is rms | gemma_rms | layernorm."""
    from steering.architectures import ARCHITECTURES

    hf = loaded.model
    spec = ARCHITECTURES.get(loaded.architecture)
    kind = spec.norm if spec else "rms"
    norm = None
    for path in ("model.norm", "transformer.ln_f", "gpt_neox.final_layer_norm", "model.final_layernorm"):
        obj: Any = hf
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is not None:
            norm = obj
            break
    d = loaded.d_model
    weight = getattr(norm, "weight", None)
    gain = np.ones(d, np.float32) if weight is None else weight.detach().float().cpu().numpy().astype(np.float32)
    if kind == "gemma_rms":
        gain = 1.0 + gain
    return gain, kind


def logit_lens(
    decoder: np.ndarray, w_u: np.ndarray, gain: np.ndarray, kind: str, opts: PageOptions, *, chunk: int = 256
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per block of features: ``(top_ids, top_w, bottom_ids, bottom_w, hist_edges, hist_counts)``.

    ``decoder`` ``[n, d_model]`` rows (unit-normalised here), ``w_u`` ``[vocab, d_model]``."""
    import torch

    wu = torch.from_numpy(np.ascontiguousarray(w_u, dtype=np.float32))
    g = torch.from_numpy(gain)
    for s in range(0, decoder.shape[0], chunk):
        d = torch.from_numpy(np.ascontiguousarray(decoder[s : s + chunk], dtype=np.float32))
        d = d / d.norm(dim=1, keepdim=True).clamp_min(1e-12)
        if kind == "layernorm":
            d = d - d.mean(dim=1, keepdim=True)
        logits = (d * g) @ wu.T  # [b, vocab]
        k = min(opts.logit_top, logits.shape[1])
        top = logits.topk(k, dim=1)
        bottom = (-logits).topk(k, dim=1)
        # Every row's histogram at once: each value's bin over [min, max] of its row, counted with one bincount.
        lo, hi = logits.min(dim=1, keepdim=True).values, logits.max(dim=1, keepdim=True).values
        hi = torch.maximum(hi, lo + 1e-6)
        nb = opts.logit_bins
        idx = ((logits - lo) / (hi - lo) * nb).long().clamp_(0, nb - 1)
        idx += torch.arange(logits.shape[0]).unsqueeze(1) * nb
        counts = torch.bincount(idx.flatten(), minlength=logits.shape[0] * nb).view(-1, nb).numpy()
        steps = torch.linspace(0, 1, nb + 1).unsqueeze(0)
        edges = (lo + (hi - lo) * steps).numpy()
        yield (
            top.indices.numpy(),
            top.values.numpy(),
            bottom.indices.numpy(),
            -bottom.values.numpy(),
            edges,
            counts,
        )


class TokenText:
    """Token id → display text, memoised (the tokenizer decodes one id at a time)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.cache: dict[int, str] = {}

    def __call__(self, i: int) -> str:
        s = self.cache.get(i)
        if s is None:
            s = self.tokenizer.decode([int(i)]).replace("\r", "").replace("\n", "↵").replace("\t", "⇥")
            self.cache[i] = s
        return s


def density_histogram(frequencies: np.ndarray, bins: int) -> dict[str, Any]:
    """Histogram of log10 firing density over an SAE's features over [-7, 0]; dead features counted apart."""
    alive = frequencies[frequencies > 0]
    edges = np.linspace(-7.0, 0.0, bins + 1)
    counts, _ = np.histogram(np.clip(np.log10(alive), -7.0, 0.0), bins=edges) if alive.size else (np.zeros(bins), None)
    return {
        "edges": [round(float(e), 3) for e in edges],
        "counts": [int(c) for c in counts],
        "dead": int((frequencies <= 0).sum()),
    }


def feature_pages(
    codes: SparseCodes,
    sequences: list[list[int]],
    seq_len: int,
    n_tokens: int,
    tokens: TokenText,
    lens: Iterator[tuple[np.ndarray, ...]] | None,
    opts: PageOptions,
) -> Iterator[dict[str, Any]]:
    """One page dict per feature of one SAE. Global token ``g`` is sequence ``g // (T-1)``, position ``g % (T-1) + 1``
    (position 0 of every sequence is dropped by the activation pass and has no activation)."""
    per_seq = seq_len - 1
    starts, tok, val = codes.by_feature()
    rng = np.random.default_rng(opts.seed)
    lens_block: tuple[np.ndarray, ...] | None = None
    block_start = 0
    for f in range(codes.d_sae):
        ft, fv = tok[starts[f] : starts[f + 1]], val[starts[f] : starts[f + 1]]
        page: dict[str, Any] = {"index": f, "v": PAGE_VERSION, "n_tokens": int(n_tokens), "firing": int(ft.size)}
        vmax = float(fv.max()) if fv.size else 0.0
        if fv.size:
            counts, edges = np.histogram(fv, bins=opts.act_bins, range=(0.0, vmax))
            page["act_hist"] = {"edges": [_sig(e) for e in edges], "counts": [int(c) for c in counts]}
        else:
            page["act_hist"] = {"edges": [], "counts": []}
        groups: list[dict[str, Any]] = []
        if fv.size:
            order = np.argsort(-fv, kind="stable")
            top = order[: opts.n_top]
            groups.append({"name": "top", "lo": _sig(float(fv[top].min())), "hi": _sig(vmax), "picks": top})
            ranked = order[::-1]  # ascending by value
            for q in range(opts.n_quantiles):
                a, b = q * ranked.size // opts.n_quantiles, (q + 1) * ranked.size // opts.n_quantiles
                if b <= a:
                    continue
                seg = ranked[a:b]
                picks = rng.choice(seg, size=min(opts.per_quantile, seg.size), replace=False)
                picks = picks[np.argsort(-fv[picks], kind="stable")]
                groups.append(
                    {
                        "name": f"q{q + 1}",
                        "lo": _sig(float(fv[seg].min())),
                        "hi": _sig(float(fv[seg].max())),
                        "picks": picks,
                    }
                )
        out_groups = []
        for grp in groups:
            examples = []
            for p in grp.pop("picks"):
                g = int(ft[p])
                seq, pos = divmod(g, per_seq)
                pos += 1
                ids = sequences[seq]
                lo, hi = max(0, pos - opts.window_left), min(len(ids), pos + opts.window_right + 1)
                window = np.arange(lo, hi)
                glob = seq * per_seq + window - 1
                found = np.searchsorted(ft, glob)
                found_c = np.minimum(found, max(ft.size - 1, 0))
                hit = (window > 0) & (ft.size > 0) & (ft[found_c] == glob)
                acts = np.where(hit, fv[found_c], 0.0)
                examples.append(
                    {"t": [tokens(ids[i]) for i in window], "a": [_sig(float(x)) for x in acts], "m": int(pos - lo)}
                )
            out_groups.append({**grp, "examples": examples})
        page["groups"] = out_groups
        if lens is not None:
            if lens_block is None or f - block_start >= lens_block[0].shape[0]:
                if lens_block is not None:
                    block_start += lens_block[0].shape[0]
                lens_block = next(lens)
            i = f - block_start
            top_ids, top_w, bot_ids, bot_w, edges, counts = lens_block
            page["logits"] = {
                "pos": [[tokens(int(t)), _sig(float(w))] for t, w in zip(top_ids[i], top_w[i], strict=True)],
                "neg": [[tokens(int(t)), _sig(float(w))] for t, w in zip(bot_ids[i], bot_w[i], strict=True)],
                "edges": [_sig(float(e)) for e in edges[i]],
                "counts": [int(c) for c in counts[i]],
            }
        yield page


@dataclass
class PagesResult:
    """Pages per SAE key ``(layer, module)`` with the per-SAE density histograms and the time it took."""

    pages: dict[tuple[int, str], list[dict[str, Any]]]
    density: dict[tuple[int, str], dict[str, Any]]
    heldout_tokens: int
    seconds: dict[str, float]


def compute_pages(
    loaded: LoadedModel,
    saes: list[tuple[int, str, SAEWeights]],
    chunks: Iterable[Chunk],
    *,
    heldout_tokens: int,
    seq_len: int,
    seqs_per_batch: int = 8,
    opts: PageOptions | None = None,
) -> PagesResult:
    """Run the held-out pass once for all ``saes`` (``(layer, module, weights)``, each with its ``hook_name``) and
    build every feature's page. The logit lens is skipped for an SAE whose ``d_in`` is not ``d_model``
    (``attn.hook_z``: per-head space; its direction in the residual needs ``W_O`` first)."""

    from training.activations import forward_batches

    opts = opts or PageOptions()
    t0 = time.perf_counter()
    for layer, module, w in saes:
        if not w.hook_name:
            raise InvalidInput(f"the {layer}-{module} SAE names no hook_name: cannot collect its activations")
    points: list[Any] = [w.hook_name for _, _, w in saes]
    codes = [SparseCodes(w.d_sae) for _, _, w in saes]
    sequences: list[list[int]] = []
    offset = 0
    n_seqs = -(-heldout_tokens // (seq_len - 1))
    for b in forward_batches(
        loaded, points, chunks, seq_len=seq_len, seqs_per_batch=seqs_per_batch, shuffle_seed=None, max_sequences=n_seqs
    ):
        acts = b.acts.numpy()
        for i, (_, _, w) in enumerate(saes):
            codes[i].add(w.encode(acts[i]), offset)
        offset += acts.shape[1]
        sequences.extend(b.token_ids.tolist())
    if offset == 0:
        raise InvalidInput("the held-out text gave no tokens: give a corpus with held-out chunks")
    t_pass = time.perf_counter() - t0
    res = pages_from_codes(
        loaded, [(layer, module, w.W_dec) for layer, module, w in saes], codes, sequences, seq_len, offset, opts
    )
    res.seconds["heldout_pass_s"] = round(t_pass, 2)
    return res


def pages_from_codes(
    loaded: LoadedModel,
    decoders: list[tuple[int, str, np.ndarray]],
    codes: list[SparseCodes],
    sequences: list[list[int]],
    seq_len: int,
    n_tokens: int,
    opts: PageOptions | None = None,
) -> PagesResult:
    """Pages from codes already collected (by :func:`compute_pages`' pass, or by a trainer's held-out loop through
    :meth:`SparseCodes.add_topk`, which saves the extra pass). ``decoders``: ``(layer, module, W_dec)`` per SAE."""
    import torch

    opts = opts or PageOptions()
    t0 = time.perf_counter()
    w_u = loaded.model.get_output_embeddings().weight.detach().float().cpu().numpy()
    gain, kind = norm_direction(loaded)
    tokens = TokenText(loaded.tokenizer)
    pages: dict[tuple[int, str], list[dict[str, Any]]] = {}
    density: dict[tuple[int, str], dict[str, Any]] = {}
    with torch.no_grad():
        for (layer, module, w_dec), c in zip(decoders, codes, strict=True):
            lens = logit_lens(w_dec, w_u, gain, kind, opts) if w_dec.shape[1] == w_u.shape[1] else None
            rows = list(feature_pages(c, sequences, seq_len, n_tokens, tokens, lens, opts))
            pages[(layer, module)] = rows
            freqs = np.array([r["firing"] for r in rows], dtype=np.float64) / n_tokens
            density[(layer, module)] = density_histogram(freqs, opts.density_bins)
    return PagesResult(pages, density, n_tokens, {"pages_s": round(time.perf_counter() - t0, 2)})
