"""Hook points on a loaded model: read and edit activations at res/att/mlp of any layer, or at any
TransformerLens hook name (``blocks.{L}.attn.hook_z``, ``blocks.{L}.ln2.hook_normalized``, ...).

For layer L of any supported architecture (``steering.architectures``):
- ``res``: the residual stream after block L (``hook_resid_post``);
- ``att``: the attention's contribution to the residual (``hook_attn_out``: after ``W_O``, and after the
  post-attention norm in Gemma 2/3);
- ``mlp``: the MLP's contribution (``hook_mlp_out``).
So ``res(L) = res(L-1) + att(L) + mlp(L)`` exactly, for sequential and parallel (GPT-NeoX, Phi) blocks,
with ``res(-1)`` the block-0 input. All three are ``[batch, seq, d_model]``. Editing ``att``/``mlp`` changes
what the block adds to the residual; editing ``res`` changes what every later block reads.

Invariants: hooks are always removed when a context exits (also on error); outputs that arrive as
tuples (attention returns ``(out, weights)``) and inputs passed by keyword are handled transparently;
every point is validated (:class:`queries.errors.InvalidInput` naming the valid range or hook names)
before any hook is installed.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from queries.errors import InvalidInput
from queries.ids import Module
from steering import architectures as arch

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
    def parse(cls, text: str) -> HookPoint:
        """Parse ``"12-res"`` / ``"12/res"``."""
        m = _POINT_RE.match(text or "")
        if not m:
            raise InvalidInput(f"hook point {text!r} is not valid (expected '{{layer}}-{{module}}', e.g. '12-res')")
        return cls(int(m["layer"]), Module.parse(m["module"]))

    def __str__(self) -> str:
        return f"{self.layer}-{self.module.value}"


def _unwrap(model: LoadedModel | nn.Module) -> Any:
    """The HF CausalLM of a LoadedModel (or the module itself)."""
    return getattr(model, "model", model) if not hasattr(model, "config") else model


def decoder_layers(model: LoadedModel | nn.Module) -> Any:
    """The model's list of decoder blocks (``model.model.layers`` for Llama, ``transformer.h`` for GPT-2, ...)."""
    return arch.blocks(_unwrap(model))


# The atlas's three modules are TransformerLens hooks: res = resid_post, att = attn_out, mlp = mlp_out.
MODULE_HOOKS = {Module.RES: "hook_resid_post", Module.ATT: "hook_attn_out", Module.MLP: "hook_mlp_out"}


def _model_name(model: LoadedModel | nn.Module) -> str:
    return str(
        getattr(model, "name", None)
        or getattr(getattr(_unwrap(model), "config", None), "_name_or_path", "")
        or "the model"
    )


def validate_points(model: LoadedModel | nn.Module, points: Iterable[HookPoint]) -> list[HookPoint]:
    """Return the points (deduplicated, sorted) or raise InvalidInput for a layer the model lacks."""
    n = len(decoder_layers(model))
    out = sorted(set(points))
    for p in out:
        if not isinstance(p.layer, int) or p.layer < 0 or p.layer >= n:
            raise InvalidInput(
                f"layer {p.layer} is out of range for model {_model_name(model)} (valid: 0–{n - 1}); pick a layer the model has"
            )
    return out


HookRef = HookPoint | str


def hook_name(model: LoadedModel | nn.Module, ref: HookRef) -> arch.HookName:
    """The TransformerLens hook a reference names (a HookPoint or ``"blocks.{L}.<hook>"``), checked against the model."""
    if isinstance(ref, HookPoint):
        validate_points(model, [ref])
        return arch.HookName(ref.layer, MODULE_HOOKS[ref.module])
    return arch.parse_hook_name(_unwrap(model), ref)


def _resolve(model: LoadedModel | nn.Module, refs: Iterable[HookRef]) -> dict[HookRef, arch.HookName]:
    return {ref: hook_name(model, ref) for ref in dict.fromkeys(refs)}


def hook_target(model: LoadedModel | nn.Module, point: HookRef) -> nn.Module:
    """The submodule whose forward output *is* the activation at a res/att/mlp point (or output-type hook)."""
    name = hook_name(model, point)
    hf = _unwrap(model)
    spec = arch.spec_for(hf)
    block = decoder_layers(model)[name.layer]
    if name.hook == "hook_resid_post":
        return block
    if name.hook == "hook_attn_out":
        return arch._get(block, spec.attn_post or spec.attn)
    if name.hook == "hook_mlp_out":
        return arch._get(block, spec.mlp_post or spec.mlp)
    raise InvalidInput(f"hook {name} is read from a module's input, not its output (use capture/edit)")


def _first(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def _replace_first(output: Any, new: torch.Tensor) -> Any:
    return (new, *output[1:]) if isinstance(output, tuple) else new


def _input_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[torch.Tensor, str | int]:
    """The hidden-states input of a module call and where it sits (kwarg name or position)."""
    if "hidden_states" in kwargs:
        return kwargs["hidden_states"], "hidden_states"
    if args:
        return args[0], 0
    key = next(iter(kwargs))
    return kwargs[key], key


def _with_input(
    args: tuple[Any, ...], kwargs: dict[str, Any], where: str | int, new: torch.Tensor
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if isinstance(where, str):
        return args, {**kwargs, where: new}
    return (new, *args[1:]), kwargs


_Read = Callable[["torch.Tensor"], None]


def _install(model: LoadedModel | nn.Module, name: arch.HookName, fn: EditFn, *, editing: bool) -> list[Any]:
    """Hook ``fn`` at ``name``. Reading: ``fn(h)`` sees the activation. Editing: its result replaces it.

    Returns the torch hook handles (the caller removes them)."""
    hf = _unwrap(model)
    spec = arch.spec_for(hf)
    block = decoder_layers(model)[name.layer]
    hook = name.hook
    if editing and hook in arch.READ_ONLY_HOOKS:
        raise InvalidInput(
            f"hook {name} can be read but not edited on Hugging Face models (edit hook_attn_out or hook_mlp_out instead)"
        )

    def on_output(module: nn.Module) -> list[Any]:
        def h(_mod: Any, _inp: Any, output: Any) -> Any:
            new = fn(_first(output))
            return _replace_first(output, new) if editing and new is not None else None

        return [module.register_forward_hook(h)]

    def on_input(
        module: nn.Module, view: Callable[[Any], Any] = lambda t: t, unview: Callable[[Any, Any], Any] = lambda t, _: t
    ) -> list[Any]:
        def h(_mod: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            x, where = _input_of(args, kwargs)
            new = fn(view(x))
            if not editing or new is None:
                return None
            return _with_input(args, kwargs, where, unview(new, x))

        return [module.register_forward_pre_hook(h, with_kwargs=True)]

    if hook == "hook_resid_post":
        return on_output(block)
    if hook == "hook_attn_out":
        return on_output(arch._get(block, spec.attn_post or spec.attn))
    if hook == "hook_mlp_out":
        return on_output(arch._get(block, spec.mlp_post or spec.mlp))
    if hook == "hook_resid_pre":
        return on_input(block)
    if hook == "hook_resid_mid":
        return on_input(arch._get(block, spec.ln2))
    if hook == "mlp.hook_post":
        return on_input(arch._get(block, spec.down))
    if hook == "attn.hook_z":
        heads = arch.attention_heads(hf)
        return on_input(
            arch._get(block, spec.o_proj),
            view=lambda t: t.view(*t.shape[:-1], heads, t.shape[-1] // heads),
            unview=lambda new, x: new.reshape(x.shape),
        )
    # ln{1,2}.hook_normalized: read from the norm's input; an edit δ reaches the consumer (attention or MLP)
    # as δ·gain, which also works where one norm feeds both (Phi).
    norm = arch._get(block, spec.ln1 if hook == "ln1.hook_normalized" else spec.ln2)
    consumer = arch._get(block, spec.attn if hook == "ln1.hook_normalized" else spec.mlp)
    if not editing:
        return [norm.register_forward_hook(lambda _m, inp, _out: fn(arch.normalize(spec.norm, norm, inp[0])))]
    seen: dict[str, torch.Tensor] = {}

    def keep(_m: Any, inp: tuple[Any, ...], _out: Any) -> None:
        seen["h"] = arch.normalize(spec.norm, norm, inp[0])

    def apply(_mod: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        x, where = _input_of(args, kwargs)
        h = seen.pop("h")
        new = fn(h)
        if new is None:
            return None
        return _with_input(args, kwargs, where, x + (new - h) * arch.norm_gain(spec.norm, norm))

    return [norm.register_forward_hook(keep), consumer.register_forward_pre_hook(apply, with_kwargs=True)]


class StopForward(Exception):
    """Raised from a hook to end a forward pass early once every needed activation is captured."""


@contextlib.contextmanager
def capture(
    model: LoadedModel | nn.Module, points: Iterable[HookRef], *, detach: bool = True, stop_after_last: bool = False
) -> Iterator[dict[Any, torch.Tensor]]:
    """Record the activations at ``points`` (HookPoints or TransformerLens hook names) during forward passes
    run inside the block.

    Yields a dict keyed like ``points``, filled by each forward pass (a later pass overwrites an earlier one).
    With ``stop_after_last`` the forward raises :class:`StopForward` right after the deepest point,
    which saves the remaining layers; use :func:`run_capture` to have that handled for you.
    """
    names = _resolve(model, points)
    acts: dict[Any, torch.Tensor] = {}
    last = max(names, key=lambda r: names[r].order) if names else None
    handles: list[Any] = []

    def make(ref: HookRef) -> EditFn:
        def read(t: torch.Tensor) -> None:
            acts[ref] = t.detach() if detach else t
            if stop_after_last and ref == last and len(acts) == len(names):
                raise StopForward
            return None

        return read

    try:
        for ref, name in names.items():
            handles.extend(_install(model, name, make(ref), editing=False))
        yield acts
    finally:
        for h in handles:
            h.remove()


def run_capture(
    model: LoadedModel | nn.Module,
    points: Iterable[HookRef],
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    stop_early: bool = True,
) -> dict[Any, torch.Tensor]:
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
def edit(
    model: LoadedModel | nn.Module, edits: Mapping[HookPoint, EditFn] | Mapping[str, EditFn] | Mapping[HookRef, EditFn]
) -> Iterator[None]:
    """Install edits: at each point, ``fn(h)`` returns the replacement activation (or None to keep ``h``,
    e.g. after an in-place change). ``attn.hook_z`` is given as ``[..., heads, d_head]`` like TransformerLens.
    Hooks are removed on exit, also on error."""
    by_ref: dict[HookRef, EditFn] = dict(edits.items())  # one key type whichever mapping was given
    names = _resolve(model, by_ref.keys())
    handles: list[Any] = []
    try:
        for ref, name in names.items():
            handles.extend(_install(model, name, by_ref[ref], editing=True))
        yield
    finally:
        for h in handles:
            h.remove()


def all_points(
    model: LoadedModel | nn.Module, modules: Iterable[Module | str] = (Module.RES, Module.ATT, Module.MLP)
) -> list[HookPoint]:
    """Every hook point of the model for the given modules, in layer order."""
    n = len(decoder_layers(model))
    mods = [m if isinstance(m, Module) else Module.parse(m) for m in modules]
    return [HookPoint(layer, m) for layer in range(n) for m in mods]
