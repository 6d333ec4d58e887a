"""Feature labels without an external labeller: top-activating contexts and activation frequency.

For every feature of every SAE, the held-out pass keeps the ``n_contexts`` tokens where it fires most
strongly, shows each with a window of text around it (``…left «token» right…``), and counts on how many
held-out tokens it fires. The ``label`` is the distinct activating tokens of those contexts, strongest
first — enough for a person (or the API's full-text ``search``) to see what a feature is about.

Results live in ``feature_labels.jsonl`` beside each trained SAE (one JSON object per feature) and on the
Feature nodes (``label``, ``top_contexts``, ``frequency``; Cypher in :mod:`queries.labels`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from queries.db import Graph
from queries.ids import Module, feature_uid

log = logging.getLogger(__name__)

LABELS_FILE = "feature_labels.jsonl"


class TopContexts:
    """Streams the ``n`` strongest activations per feature of ``n_saes`` SAEs over held-out batches."""

    def __init__(self, n_saes: int, d_sae: int, n: int = 5) -> None:
        self.n = n
        self.values = torch.full((n_saes, n, d_sae), -1.0)
        self.where = torch.full((n_saes, n, d_sae), -1, dtype=torch.long)

    def update(self, vals: torch.Tensor, idx: torch.Tensor, offset: int) -> None:
        """``vals``/``idx``: ``[n_saes, B, k]`` TopK activations; ``offset``: global index of token 0."""
        n_saes, b, _ = vals.shape
        m = min(self.n, b)
        for i in range(n_saes):  # one SAE at a time: a dense [tokens, d_sae] block stays small
            z = torch.zeros(b, self.values.shape[-1]).scatter(-1, idx[i], vals[i])
            top_v, top_i = z.topk(m, dim=0)  # [m, d_sae]
            cat_v = torch.cat([self.values[i], top_v], dim=0)
            cat_w = torch.cat([self.where[i], top_i + offset], dim=0)
            best_v, best_i = cat_v.topk(self.n, dim=0)
            self.values[i] = best_v
            self.where[i] = cat_w.gather(0, best_i)


def _clean(text: str) -> str:
    return text.replace("\r", "").replace("\n", "↵").replace("\t", " ")


def context_text(tokenizer: Any, ids: list[int], pos: int, left: int = 12, right: int = 4) -> tuple[str, str]:
    """``(token, "…left «token» right…")`` for position ``pos`` of a token sequence."""
    tok = tokenizer.decode([ids[pos]])
    before = tokenizer.decode(ids[max(0, pos - left) : pos])
    after = tokenizer.decode(ids[pos + 1 : pos + 1 + right])
    return tok, f"…{_clean(before)}«{_clean(tok)}»{_clean(after)}…"


def feature_rows(
    tokenizer: Any,
    sequences: list[list[int]],
    seq_len: int,
    top: TopContexts,
    sae_i: int,
    frequencies: torch.Tensor,
) -> Iterator[dict[str, Any]]:
    """One dict per feature of SAE ``sae_i``: index, label, top_contexts, frequency, max_activation.

    Global token index ``g`` (position 0 of each sequence dropped) maps to sequence ``g // (T-1)``,
    position ``g % (T-1) + 1``.
    """
    per_seq = seq_len - 1
    values = top.values[sae_i]
    where = top.where[sae_i]
    for f in range(values.shape[-1]):
        contexts: list[str] = []
        tokens: list[str] = []
        for j in range(values.shape[0]):
            v = float(values[j, f])
            g = int(where[j, f])
            if v <= 0 or g < 0:
                break
            seq, pos = divmod(g, per_seq)
            tok, ctx = context_text(tokenizer, sequences[seq], pos + 1)
            contexts.append(ctx)
            stripped = _clean(tok).strip() or repr(tok)
            if stripped not in tokens:
                tokens.append(stripped)
        yield {
            "index": f,
            "label": " · ".join(tokens[:3]),
            "top_contexts": contexts,
            "frequency": float(frequencies[f]),
            "max_activation": max(0.0, float(values[0, f])),
        }


def write_labels_file(path: Path, rows: Iterator[dict[str, Any]]) -> int:
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_labels_file(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def store_labels(
    graph: Graph, atlas: str, layer: int, module: Module, rows: list[dict[str, Any]], *, batch_size: int = 5_000
) -> int:
    """Set ``label``, ``top_contexts``, ``frequency`` on the Feature nodes of one SAE; returns nodes updated."""
    from queries.labels import SET_FEATURE_LABELS

    payload = (
        {
            "uid": feature_uid(atlas, layer, module, int(r["index"])),
            "label": r["label"],
            "top_contexts": r["top_contexts"],
            "frequency": r["frequency"],
            "max_activation": r.get("max_activation", 0.0),
        }
        for r in rows
    )
    return graph.write_batches(SET_FEATURE_LABELS, payload, batch_size=batch_size, timeout=300)
