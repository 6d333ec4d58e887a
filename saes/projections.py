"""Output projections ``W_O`` per layer: how an attention SAE on ``hook_z`` (the per-head space) reaches d_model.

``hook_attn_out = z_flat @ W_O (+ b_O)``, so a z-space decoder row ``d_z`` writes ``d_z @ W_O`` into the attention
output. :class:`OutputProjections` hands ingest those matrices (``[n_heads·d_head, d_model]`` float32) by layer,
and says where they came from (``source``, stored on the SAE node). ``steering.model.model_projections``
builds one from the atlas's model; ingest itself never loads a model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class OutputProjections:
    source: str  # e.g. "model:HuggingFaceTB/SmolLM2-135M-Instruct"
    load: Callable[[int], np.ndarray]  # layer -> W_O [d_z, d_model]
    _cache: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def __call__(self, layer: int) -> np.ndarray:
        if layer not in self._cache:
            self._cache[layer] = np.ascontiguousarray(self.load(layer), dtype=np.float32)
        return self._cache[layer]


def is_hook_z(hook_name: str | None) -> bool:
    return bool(hook_name) and str(hook_name).endswith("attn.hook_z")
