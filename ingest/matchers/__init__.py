"""Edge matchers: plug-ins of ingest's one per-layer loop (issue #28).

Every matcher answers the same question for one SAE pair (an earlier SAE's decoders = sources, ``res(L)``'s =
targets): which source features are each target's best candidate predecessors, with what score. The protocol
(:class:`Matcher`) takes the pair's unit decoder rows and row norms and returns ``(scores [n_t, k], idx [n_t, k])``
sorted best first, ``idx = -1`` where the matcher gives a target fewer than ``k`` candidates (the permutation
gives exactly one). ``ingest.layer_matching`` runs the chosen ones on every pair of a layer and writes each as
FLOWS_TO edges with ``method`` = its name, ``score`` = its own score, ``similarity`` = the pair's decoder cosine
(comparable across matchers) and ``target_rank`` = its rank. Categories and ``s_res``/``s_att``/``s_mlp``
always come from ``cosine``.

What each score means:

- ``cosine``: the decoder cosine (the paper's rule; its edges carry no ``method``/``score``, so an atlas matched
  by cosine alone is byte-for-byte today's).
- ``permutation`` (SAE Match, Balagansky et al. 2024): one-to-one assignment minimising the summed squared
  distance between *folded* decoder rows; score = the assigned pair's cosine. Folding scales each decoder row by
  the activation threshold a JumpReLU SAE applies before it (so rows are compared at the size they are written);
  our TopK SAEs have no threshold, so their folded decoder is the decoder itself (rows at their norms).
- ``ot``: entropic optimal transport (Sinkhorn) between uniform masses on the two feature sets, cost ``1 - cos``;
  score = the share of a target's mass that comes from that source (0..1, rows sum to 1).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import numpy as np

from queries.errors import InvalidInput

DEFAULT_MATCHERS: tuple[str, ...] = ("cosine",)


class Matcher(Protocol):
    name: str
    needs_model: bool  # reads cached activations (a model must be given) rather than decoders alone

    def match(
        self,
        targets: np.ndarray,
        sources: np.ndarray,
        k: int,
        *,
        target_norms: np.ndarray | None = None,
        source_norms: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]: ...


def registry() -> dict[str, Matcher]:
    from ingest.matchers.cosine import CosineMatcher
    from ingest.matchers.ot import SinkhornMatcher
    from ingest.matchers.permutation import PermutationMatcher

    found: list[Matcher] = [CosineMatcher(), PermutationMatcher(), SinkhornMatcher()]
    return {m.name: m for m in found}


def parse_matchers(names: str | Iterable[str], *, have_model: bool = False) -> tuple[str, ...]:
    """``cosine,permutation`` → ``("cosine", "permutation")``; cosine is always first (categories need it).

    An unknown name, or a matcher that reads activations when no model is given, is one InvalidInput naming it
    and the valid names."""
    items = [n.strip().lower() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    known = registry()
    for n in items:
        if n not in known:
            raise InvalidInput(
                f"matcher {n!r} is not known (valid: {', '.join(known)}); pass e.g. --matchers cosine,permutation"
            )
        if known[n].needs_model and not have_model:
            raise InvalidInput(f"matcher {n!r} reads activations and needs the atlas's model; none was given")
    out = ["cosine"] + [n for n in dict.fromkeys(items) if n != "cosine"]
    return tuple(out)


def pair_cosines(targets: np.ndarray, sources: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Decoder cosine of each (target row, idx[row, j]) pair; NaN where idx is -1."""
    safe = np.where(idx < 0, 0, idx)
    cos = np.einsum("td,tkd->tk", targets, sources[safe]).astype(np.float32)
    return np.where(idx < 0, np.nan, cos).astype(np.float32)
