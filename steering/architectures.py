"""Hook names as the field writes them (TransformerLens ``blocks.{L}.<hook>``), resolved on Hugging Face models.

Job: map a TransformerLens hook name — what SAELens configs store in ``metadata.hook_name`` — to the module
of a loaded transformers model where that activation can be read and edited, for every architecture in
:data:`ARCHITECTURES`. Our own table, not TransformerLens at runtime: steering and training run the HF model
(its SDPA attention and KV-cache ``generate``), TransformerLens serves as the test oracle (docs/steering.md,
"Hook names", says why).

Each :class:`ArchSpec` names, relative to one decoder block, the modules whose forward input or output *is*
the TransformerLens activation:

==========================  =====================================================================
``hook_resid_pre``          the block's input ``hidden_states``
``hook_resid_post``         the block's output
``hook_attn_out``           the attention's contribution to the residual (Gemma 2/3: after the
                            post-attention norm)
``hook_mlp_out``            the MLP's contribution (Gemma 2/3: after the post-feedforward norm)
``attn.hook_z``             the input of the attention output projection ``W_O``, ``[b, s, heads, d_head]``
``mlp.hook_post``           the input of the MLP output projection (after the activation / gate)
``ln1.hook_normalized``     the attention input normalised *before* the norm's gain and bias
``ln2.hook_normalized``     the same for the MLP input (Phi shares one norm: equal to ``ln1``)
``hook_resid_mid``          (sequential blocks only, read-only) residual after attention
==========================  =====================================================================

Invariants: an unknown hook name raises :class:`queries.errors.InvalidInput` listing the valid ones for that
model; a model type without an entry raises :class:`UnsupportedArchitecture` naming the supported ones and
how to add one. Nothing here imports torch at module import time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from queries.errors import InvalidInput, UnsupportedArchitecture

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ArchSpec:
    """Where TransformerLens's hooks live in one HF architecture (module paths relative to a decoder block)."""

    blocks: str  # path from the CausalLM to the list of decoder blocks
    attn: str  # attention module; its output[0] is the attention output after W_O (+ b_O)
    o_proj: str  # W_O: its input is hook_z
    mlp: str
    down: str  # the MLP's output projection: its input is mlp.hook_post
    ln1: str
    ln2: str  # the norm feeding the MLP (Phi: the same module as ln1)
    norm: str  # "layernorm" | "rms" | "gemma_rms" (Gemma's RMSNorm multiplies by 1 + w)
    attn_post: str | None = None  # Gemma 2/3 post-attention norm: its output is hook_attn_out
    mlp_post: str | None = None  # Gemma 2/3 post-feedforward norm: its output is hook_mlp_out
    parallel: bool | str = False  # attention and MLP both read resid_pre; a str names the config flag

    def is_parallel(self, config: Any) -> bool:
        if isinstance(self.parallel, str):
            return bool(getattr(config, self.parallel, True))
        return self.parallel


_LLAMA = ArchSpec(
    blocks="model.layers",
    attn="self_attn",
    o_proj="self_attn.o_proj",
    mlp="mlp",
    down="mlp.down_proj",
    ln1="input_layernorm",
    ln2="post_attention_layernorm",
    norm="rms",
)
_GEMMA2 = ArchSpec(
    blocks="model.layers",
    attn="self_attn",
    o_proj="self_attn.o_proj",
    mlp="mlp",
    down="mlp.down_proj",
    ln1="input_layernorm",
    ln2="pre_feedforward_layernorm",
    norm="gemma_rms",
    attn_post="post_attention_layernorm",
    mlp_post="post_feedforward_layernorm",
)

# model_type -> spec. To add an architecture: add its entry here (module paths from its modeling file) and a
# tiny config to tests/unit/steering/test_hooks_vs_transformer_lens.py; the TransformerLens equality test
# then proves the mapping.
ARCHITECTURES: dict[str, ArchSpec] = {
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
    "qwen3": _LLAMA,
    "gemma2": _GEMMA2,
    "gemma3_text": _GEMMA2,
    "gpt2": ArchSpec(
        blocks="transformer.h",
        attn="attn",
        o_proj="attn.c_proj",
        mlp="mlp",
        down="mlp.c_proj",
        ln1="ln_1",
        ln2="ln_2",
        norm="layernorm",
    ),
    "gpt_neox": ArchSpec(
        blocks="gpt_neox.layers",
        attn="attention",
        o_proj="attention.dense",
        mlp="mlp",
        down="mlp.dense_4h_to_h",
        ln1="input_layernorm",
        ln2="post_attention_layernorm",
        norm="layernorm",
        parallel="use_parallel_residual",
    ),
    "phi": ArchSpec(
        blocks="model.layers",
        attn="self_attn",
        o_proj="self_attn.dense",
        mlp="mlp",
        down="mlp.fc2",
        ln1="input_layernorm",
        ln2="input_layernorm",
        norm="layernorm",
        parallel=True,
    ),
}
SUPPORTED_ARCHITECTURES: tuple[str, ...] = tuple(ARCHITECTURES)
HOW_TO_ADD = "to add one, map its modules in steering/architectures.py ARCHITECTURES and add it to the TransformerLens equality test"

# Per-layer hooks, in the order a forward pass reaches them (used to stop a forward early).
HOOKS_IN_ORDER: tuple[str, ...] = (
    "hook_resid_pre",
    "ln1.hook_normalized",
    "attn.hook_z",
    "hook_attn_out",
    "hook_resid_mid",
    "ln2.hook_normalized",
    "mlp.hook_post",
    "hook_mlp_out",
    "hook_resid_post",
)
READ_ONLY_HOOKS = frozenset({"hook_resid_mid"})  # HF keeps it in a local variable: readable, not editable
_NAME_RE = re.compile(r"^blocks\.(?P<layer>\d+)\.(?P<hook>[a-z0-9_.]+)$")


def model_type(model: Any) -> str:
    return str(getattr(getattr(model, "config", None), "model_type", type(model).__name__))


def spec_for(model: Any) -> ArchSpec:
    """The hook mapping of an HF CausalLM, or :class:`UnsupportedArchitecture`."""
    arch = model_type(model)
    spec = ARCHITECTURES.get(arch)
    if spec is None:
        raise UnsupportedArchitecture(
            f"model architecture {arch!r} has no known hook mapping (supported: {', '.join(SUPPORTED_ARCHITECTURES)}; {HOW_TO_ADD})"
        )
    return spec


def _get(root: Any, path: str) -> Any:
    for part in path.split("."):
        root = getattr(root, part)
    return root


def blocks(model: Any) -> Any:
    return _get(model, spec_for(model).blocks)


def valid_hooks(model: Any) -> list[str]:
    """Per-layer hook names this model supports (``blocks.{L}.`` + each)."""
    spec = spec_for(model)
    parallel = spec.is_parallel(model.config)
    return [h for h in HOOKS_IN_ORDER if not (parallel and h == "hook_resid_mid")]


@dataclass(frozen=True, order=True)
class HookName:
    """One TransformerLens hook: ``blocks.{layer}.{hook}``."""

    layer: int
    hook: str

    def __str__(self) -> str:
        return f"blocks.{self.layer}.{self.hook}"

    @property
    def order(self) -> tuple[int, int]:
        return (self.layer, HOOKS_IN_ORDER.index(self.hook))


def parse_hook_name(model: Any, name: str) -> HookName:
    """Check ``name`` against the model (layer range and hook kind); InvalidInput lists the valid names."""
    valid = valid_hooks(model)
    n = len(blocks(model))
    m = _NAME_RE.match(str(name).strip())
    if not m or m["hook"] not in valid:
        raise InvalidInput(
            f"hook name {name!r} is not valid for this {model_type(model)} model "
            f"(valid: blocks.{{L}}.<hook> with L in 0–{n - 1} and <hook> one of {', '.join(valid)})"
        )
    layer = int(m["layer"])
    if layer >= n:
        raise InvalidInput(f"hook name {name!r}: layer {layer} is out of range for this model (valid: 0–{n - 1})")
    return HookName(layer, m["hook"])


# -- what a hook reads and writes on the HF modules --------------------------------------------------------


def normalize(kind: str, norm_module: Any, x: torch.Tensor) -> torch.Tensor:
    """The norm's input normalised without gain or bias (TransformerLens's ``hook_normalized``)."""
    import torch

    eps = float(getattr(norm_module, "variance_epsilon", getattr(norm_module, "eps", 1e-6)))
    if kind == "layernorm":
        return torch.nn.functional.layer_norm(x, x.shape[-1:], None, None, eps)
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def norm_gain(kind: str, norm_module: Any) -> torch.Tensor:
    """What multiplies the normalised input (a change δ of ``hook_normalized`` changes the norm's output by δ·gain)."""
    w = norm_module.weight
    return (1.0 + w.float()).to(w.dtype) if kind == "gemma_rms" else w


def attention_heads(model: Any) -> int:
    return int(model.config.num_attention_heads)


def output_projection(model: Any, layer: int) -> torch.Tensor:
    """``W_O`` of block ``layer`` as ``[n_heads·d_head, d_model]``: ``hook_attn_out = z_flat @ W_O (+ b_O)``.

    For Gemma 2/3 the post-attention norm's gain ``1 + w`` is folded in (column-wise): the direction a
    z-space vector writes at ``hook_attn_out``, up to that norm's per-token scale (docs/ingest.md, caveat).
    """
    import torch

    spec = spec_for(model)
    block = blocks(model)[layer]
    proj = _get(block, spec.o_proj)
    weight = proj.weight.detach().float()
    # nn.Linear stores [out, in]; GPT-2's Conv1D stores [in, out]
    w_o = weight if type(proj).__name__ == "Conv1D" else weight.T
    if spec.attn_post is not None:
        w_o = w_o * norm_gain(spec.norm, _get(block, spec.attn_post)).detach().float()[None, :]
    return torch.as_tensor(w_o).contiguous()
