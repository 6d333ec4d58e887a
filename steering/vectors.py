"""Direction steering and clamping with a strength per batch row, so one batched forward (or one batched
generation with its KV cache) evaluates a whole strength grid at once.

- :class:`RowAdd`: ``h[b] += scale[b]·v`` at every position (``v`` any d-vector: a DiffMean or probe
  direction, a sum of decoder rows, a random direction).
- :class:`RowClamp`: raise selected SAE features to a floor, ``a_i ← max(a_i, scale[b]·target_i)``, by adding
  ``Σ_i relu(scale[b]·target_i − a_i)·d_i`` (the activation ``a`` is encoded on the fly from the current ``h``);
  features already above their floor are left alone, so clamping never lowers a feature.

Invariants: ``scale`` has one entry per batch row and is set before each forward (``set_scale``); the ops
hold tensors on the model's device and dtype; they return a new tensor (never edit ``h`` in place).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass
class RowAdd:
    """``h + scale[:, None, None]·vector``; ``scale`` is ``[batch]``."""

    vector: torch.Tensor  # [d]
    scale: torch.Tensor | None = None  # [batch]
    hook: str | None = None  # SteeringPlan-compatible: None = the hook point itself

    def set_scale(self, scale: torch.Tensor) -> None:
        self.scale = scale.to(self.vector.dtype)

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        s = self.scale if self.scale is not None else h.new_ones(h.shape[0])
        return h + s.view(-1, *([1] * (h.dim() - 1))).to(h.dtype) * self.vector.to(h.dtype)


@dataclass
class RowClamp:
    """Raise the selected features of one SAE to ``scale[b]·target`` wherever they are lower."""

    enc: dict[str, Any]  # steering.saes.HookSAE.encoder_slice of the selected features
    dec: torch.Tensor  # [n, d] their decoder rows
    target: torch.Tensor  # [n] floor at scale 1 (SAE activation units)
    scale: torch.Tensor | None = None
    hook: str | None = None
    applied: list[float] = field(default_factory=list)  # mean per-token ‖Δh‖ of each call (diagnostics)

    def set_scale(self, scale: torch.Tensor) -> None:
        self.scale = scale.to(self.dec.dtype)

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        import torch

        from steering.saes import encode_selected

        s = self.scale if self.scale is not None else h.new_ones(h.shape[0])
        a = encode_selected(h, self.enc)  # [B, T, n]
        floor = s.view(-1, *([1] * (h.dim() - 1))).to(h.dtype) * self.target.to(h.dtype)
        delta = torch.relu(floor - a) @ self.dec.to(h.dtype)
        return h + delta


def set_scales(ops: dict[Any, Any], scale: torch.Tensor) -> None:
    """Give every row-wise op the same per-row strengths (each op's own unit is folded into its vector)."""
    for op in ops.values():
        op.set_scale(scale)
