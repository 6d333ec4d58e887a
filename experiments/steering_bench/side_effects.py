"""Side effects: benign control text (held-out corpus windows, topped up with neutral answers) and the mean
cross-entropy on it, unsteered or per α of a steering method."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from experiments.steering_bench import concepts as cs
from experiments.steering_bench import methods as me
from queries.errors import InvalidInput

if TYPE_CHECKING:
    from steering.model import LoadedModel

log = logging.getLogger(__name__)


def benign_windows(
    lm: LoadedModel, negatives: list[cs.Text], corpus: str | None, *, n_windows: int, n_tokens: int, seed: int
) -> list[list[int]]:
    """Benign control text: held-out corpus windows, topped up with neutral test-split answers."""
    from experiments.texts import held_out_windows, windows_from_texts

    try:
        wins = held_out_windows(lm.tokenizer, n_windows, n_tokens, seed=seed, corpus=corpus)
    except Exception as exc:  # noqa: BLE001 - no corpus: neutral answers only (logged)
        log.warning("no held-out corpus for the side-effect text (%s)", exc)
        wins = []
    if len(wins) < n_windows:
        extra = windows_from_texts(
            lm.tokenizer, [t.text for t in negatives if t.split == "test"], None, min(n_tokens, 24)
        )
        wins += extra[: n_windows - len(wins)]
    if not wins:
        raise InvalidInput("no benign text for the side-effect score (give --corpus or more negatives)")
    return wins


def benign_ce(
    lm: LoadedModel, wins: list[list[int]], st: me.Steer | None, alphas: list[float] | None, bs: int
) -> np.ndarray:
    """Mean cross-entropy on the benign windows, per α (one value when unsteered)."""
    from steering.batch import nll

    if st is None or alphas is None:
        return np.array([np.nanmean(nll(lm, [[]] * len(wins), wins, batch_size=bs))])
    rows = [w for _ in alphas for w in wins]
    sc_ = [a for a in alphas for _ in wins]
    v = nll(lm, [[]] * len(rows), rows, edits=st.ops, scales=sc_, batch_size=bs)
    return v.reshape(len(alphas), len(wins)).mean(1)
