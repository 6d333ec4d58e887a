"""Hook points of DESIGN.md on a loaded model: read and edit activations at res/att/mlp of any layer.

For layer L of a Llama-family decoder:
- ``res``: the residual stream after block L — the decoder layer's output;
- ``att``: the self-attention output after ``o_proj``, before it is added to the residual;
- ``mlp``: the MLP output (after ``down_proj``), before it is added to the residual.
So ``res(L) = res(L-1) + att(L) + mlp(L)`` exactly, with ``res(-1)`` the token embeddings.

All three are ``[batch, seq, d_model]``. Editing ``att``/``mlp`` changes what the block adds to the
residual; editing ``res`` changes what every later block reads.

Invariants: hooks are always removed when a context exits (also on error); outputs that arrive as
tuples (attention returns ``(out, weights)``; older transformers wrap decoder-layer outputs) are
handled transparently; :func:`validate_points` raises :class:`queries.errors.InvalidInput` naming the
valid range before any hook is installed.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from queries.errors import InvalidInput
from queries.ids import Module

if TYPE_CHECKING:
    import torch
    from torch import nn

    from steering.model import LoadedModel

_POINT_RE = re.compile(r"^\s*(?P<layer>\d+)\s*[-/.]\s*(?P<module>[a-zA-Z]+)\s*$")


@dataclass(frozen=True, order=True)
class HookPoint:
    """One hook point: ``layer`` (0-based block index) and ``module`` (res | att | mlp)."""

    layer: int
    module: Module

    def __post_init__(self) -> None:
        if not isinstance(self.module, Module):
            object.__setattr__(self, "module", Module.parse(str(self.module)))

    @classmethod
    def parse(cls, text: str) -> "HookPoint":
        """Parse ``"12-res"`` / ``"12/res"``."""
        m = _POINT_RE.match(text or "")
        if not m:
            raise InvalidInput(f"hook point {text!r} is not valid (expected '{{layer}}-{{module}}', e.g. '12-res')")
        return cls(int(m["layer"]), Module.parse(m["module"]))

    def __str__(self) -> str:
        return f"{self.layer}-{self.module.value}"


def _unwrap(model: "LoadedModel | nn.Module") -> Any:
    return getattr(model, "model", model) if not hasattr(model, "config") else model


def decoder_layers(model: "LoadedModel | nn.Module") -> Any:
    """The model's list of decoder blocks (``model.model.layers`` for Llama-family models)."""
    hf = _unwrap(model)
    inner = getattr(hf, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None:
        arch = getattr(getattr(hf, "config", None), "model_type", type(hf).__name__)
        from steering.model import SUPPORTED_ARCHITECTURES, UnsupportedArchitecture

        raise UnsupportedArchitecture(
            f"model architecture {arch!r} has no `model.layers` decoder stack, so res/att/mlp hook points are undefined "
            f"(supported: {', '.join(SUPPORTED_ARCHITECTURES)})"
        )
    return layers


def validate_points(model: "LoadedModel | nn.Module", points: Iterable[HookPoint]) -> list[HookPoint]:
    """Return the points (deduplicated, sorted) or raise InvalidInput for a layer the model lacks."""
    layers = decoder_layers(model)
    n = len(layers)
    out = sorted(set(points))
    for p in out:
        if not isinstance(p.layer, int) or p.layer < 0 or p.layer >= n:
            name = getattr(model, "name", None) or getattr(getattr(_unwrap(model), "config", None), "_name_or_path", "the model")
            raise InvalidInput(f"layer {p.layer} is out of range for model {name} (valid: 0–{n - 1}); pick a layer the model has")
        block = layers[p.layer]
        for attr in ("self_attn", "mlp"):
            if not hasattr(block, attr):
                raise InvalidInput(f"decoder block {p.layer} has no `{attr}` submodule, so hook point {p} is undefined for this architecture")
    return out


def hook_target(model: "LoadedModel | nn.Module", point: HookPoint) -> "nn.Module":
    """The submodule whose forward output *is* the activation at ``point``."""
    validate_points(model, [point])
    block = decoder_layers(model)[point.layer]
    if point.module is Module.RES:
        return block
    if point.module is Module.ATT:
        return block.self_attn
    return block.mlp


def _first(output: Any) -> "torch.Tensor":
    return output[0] if isinstance(output, tuple) else output


def _replace_first(output: Any, new: "torch.Tensor") -> Any:
    return (new, *output[1:]) if isinstance(output, tuple) else new


# Within a block attention runs first, then the MLP, then the block returns the residual.
_EXEC_ORDER = {Module.ATT: 0, Module.MLP: 1, Module.RES: 2}


class StopForward(Exception):
    """Raised from a hook to end a forward pass early once every needed activation is captured."""


@contextlib.contextmanager
def capture(model: "LoadedModel | nn.Module", points: Iterable[HookPoint], *, detach: bool = True, stop_after_last: bool = False) -> Iterator[dict[HookPoint, "torch.Tensor"]]:
    """Record the activations at ``points`` during forward passes run inside the block.

    Yields a dict filled by each forward pass (a later pass overwrites an earlier one).
    With ``stop_after_last`` the forward raises :class:`StopForward` right after the deepest point,
    which saves the remaining layers; use :func:`run_capture` to have that handled for you.
    """
    pts = validate_points(model, points)
    acts: dict[HookPoint, "torch.Tensor"] = {}
    last = max(pts, key=lambda p: (p.layer, _EXEC_ORDER[p.module])) if pts else None
    handles = []

    def make(point: HookPoint) -> Callable[..., None]:
        def hook(_mod: Any, _inp: Any, output: Any) -> None:
            t = _first(output)
            acts[point] = t.detach() if detach else t
            if stop_after_last and point == last and _complete():
                raise StopForward

        return hook

    def _complete() -> bool:
        return all(p in acts for p in pts)

    try:
        for p in pts:
            handles.append(hook_target(model, p).register_forward_hook(make(p)))
        yield acts
    finally:
        for h in handles:
            h.remove()


def run_capture(model: "LoadedModel | nn.Module", points: Iterable[HookPoint], input_ids: "torch.Tensor", attention_mask: "torch.Tensor | None" = None, *, stop_early: bool = True) -> dict[HookPoint, "torch.Tensor"]:
    """One forward pass over ``input_ids`` returning the activations at ``points`` (no grad).

    With ``stop_early`` the layers after the deepest point are skipped (a large saving for shallow points).
    """
    import torch

    hf = _unwrap(model)
    with torch.no_grad(), capture(model, points, stop_after_last=stop_early) as acts:
        try:
            hf(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        except StopForward:
            pass
    return dict(acts)


EditFn = Callable[["torch.Tensor"], "torch.Tensor | None"]


@contextlib.contextmanager
def edit(model: "LoadedModel | nn.Module", edits: Mapping[HookPoint, EditFn]) -> Iterator[None]:
    """Install output edits: at each point, ``fn(h)`` returns the replacement activation (or None to
    keep ``h``, e.g. after an in-place change). Hooks are removed on exit, also on error."""
    pts = validate_points(model, edits.keys())
    handles = []

    def make(fn: EditFn) -> Callable[..., Any]:
        def hook(_mod: Any, _inp: Any, output: Any) -> Any:
            new = fn(_first(output))
            return None if new is None else _replace_first(output, new)

        return hook

    try:
        for p in pts:
            handles.append(hook_target(model, p).register_forward_hook(make(edits[p])))
        yield
    finally:
        for h in handles:
            h.remove()


def all_points(model: "LoadedModel | nn.Module", modules: Iterable[Module | str] = (Module.RES, Module.ATT, Module.MLP)) -> list[HookPoint]:
    """Every hook point of the model for the given modules, in layer order."""
    n = len(decoder_layers(model))
    mods = [m if isinstance(m, Module) else Module.parse(m) for m in modules]
    return [HookPoint(layer, m) for layer in range(n) for m in mods]
