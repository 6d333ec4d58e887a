"""Held-out text for the experiments, tokenised into fixed-length windows.

Default source: the held-out split of the training corpus (``training.corpus``: chunks are assigned
by a hash, so the SAEs never saw this text). Any local text/jsonl/parquet path works too.
Invariants: windows are exactly ``n_tokens`` long (so batches need no padding), non-overlapping, chosen
by a seeded shuffle, and the same (corpus, seed, n, n_tokens) always gives the same windows.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

from queries.errors import InvalidInput

log = logging.getLogger(__name__)


def held_out_windows(
    tokenizer: Any, n: int, n_tokens: int, *, seed: int = 0, corpus: str | Path | None = None
) -> list[list[int]]:
    """``n`` windows of ``n_tokens`` token ids from held-out text, drawn at random (seeded) from all the
    non-overlapping windows of all held-out chunks."""
    from training.corpus import load_split, resolve_corpus

    split = load_split(resolve_corpus(corpus))
    windows = windows_from_texts(tokenizer, (c.text for c in split.held_out), None, n_tokens, every=True)
    random.Random(seed).shuffle(windows)
    if len(windows) < n:
        log.warning("held-out text gave %d windows of %d tokens (asked for %d)", len(windows), n_tokens, n)
    if not windows:
        raise InvalidInput(
            f"no held-out text of at least {n_tokens} tokens in corpus {corpus or 'default'} (give a larger corpus or fewer tokens)"
        )
    return windows[:n]


def windows_from_texts(
    tokenizer: Any, texts: Any, n: int | None, n_tokens: int, *, every: bool = False
) -> list[list[int]]:
    """Windows of exactly ``n_tokens`` tokens: the first of each long-enough text, or with ``every`` all
    non-overlapping windows of each text; at most ``n`` (None: no limit)."""
    out: list[list[int]] = []
    for text in texts:
        # No BOS is added: the SAEs were trained on packed text without one. Position 0 plays the BOS role
        # (an attention sink with outsized norms) and is never sampled, like the paper's "non-BOS tokens".
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        starts = range(0, len(ids) - n_tokens + 1, n_tokens) if every else ([0] if len(ids) >= n_tokens else [])
        for s in starts:
            out.append(ids[s : s + n_tokens])
            if n is not None and len(out) >= n:
                return out
    return out
