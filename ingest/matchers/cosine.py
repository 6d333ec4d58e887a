"""The paper's decoder cosine top-k (exact; ``ingest.matching.topk_search``)."""

from __future__ import annotations

import numpy as np

from ingest.matching import topk_search


class CosineMatcher:
    name = "cosine"
    needs_model = False

    def match(
        self,
        targets: np.ndarray,
        sources: np.ndarray,
        k: int,
        *,
        target_norms: np.ndarray | None = None,
        source_norms: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        return topk_search(targets, sources, k)
