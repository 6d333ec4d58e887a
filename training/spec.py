"""What determines a trained atlas: :class:`TrainSpec` (its hash names the cache entry), the hook names an SAE
may read, and ``--layers`` parsing. Pure: no torch at import, no I/O."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from queries.errors import InvalidInput
from queries.ids import Module, check_atlas_name
from steering.architectures import HOOKS_IN_ORDER

SPEC_VERSION = 1


# Where each module's SAEs read by default (TransformerLens names, per layer); another hook is a spec choice.
DEFAULT_HOOKS = {"res": "hook_resid_post", "att": "hook_attn_out", "mlp": "hook_mlp_out"}
# Hooks an SAE can be trained on here: in d_model space (one run shares one width; ingest compares d_model rows),
# or attn.hook_z for att SAEs (ingest maps it through W_O). mlp.hook_post is d_mlp wide and has no such map.
TRAINABLE_HOOKS = tuple(h for h in HOOKS_IN_ORDER if h != "mlp.hook_post")
_BLOCK_PREFIX = re.compile(r"^blocks\.(\{L\}|\d+)\.")


def normalize_hook(module: str, name: str) -> str:
    """``"blocks.{L}.ln2.hook_normalized"`` or ``"ln2.hook_normalized"`` → ``"ln2.hook_normalized"``, checked.

    Raises InvalidInput listing the valid names (per layer; the model's own check comes in :func:`train_atlas`)."""
    hook = _BLOCK_PREFIX.sub("", name.strip())
    valid = [h for h in TRAINABLE_HOOKS if h != "attn.hook_z" or module == "att"]
    if hook not in valid:
        raise InvalidInput(
            f"{module} hook {name!r} is not valid (valid: {', '.join(valid)}, optionally written blocks.{{L}}.<hook>)"
        )
    return hook


_NO_DEFAULT = object()
# Options whose default stays out of the spec hash, so atlases trained before the option existed keep theirs.
_HASH_DEFAULTS: dict[str, Any] = {
    **{f"{m}_hook": h for m, h in DEFAULT_HOOKS.items()},
    "epochs": 1.0,
    "seeds": 1,
    "seed_modules": None,
    "module_k": None,
}


@dataclass
class TrainSpec:
    """Everything that determines a trained atlas (its hash names the cache entry)."""

    atlas: str
    model: str | None  # None → the offline SmolLM2 default
    layers: list[int]
    modules: list[str] = field(default_factory=lambda: ["res", "att", "mlp"])
    # the hook each module's SAEs read (TransformerLens per-layer names, steering.architectures.HOOKS_IN_ORDER);
    # e.g. att_hook = "attn.hook_z" (per-head space, mapped through W_O at ingest), mlp_hook = "ln2.hook_normalized"
    res_hook: str = DEFAULT_HOOKS["res"]
    att_hook: str = DEFAULT_HOOKS["att"]
    mlp_hook: str = DEFAULT_HOOKS["mlp"]
    d_sae: int = 2048
    k: int = 32
    lr: float = 2e-3
    token_budget: int = 200_000
    seq_len: int = 128
    seqs_per_batch: int = 8
    buffer_batches: int = 4
    train_batch_tokens: int = 1024
    heldout_tokens: int = 16_384
    held_out_fraction: float = 0.05
    corpus: str = "default"
    text_field: str = "text"
    dead_after_tokens: int = 50_000
    n_contexts: int = 5
    seed: int = 0
    checkpoint_every: int = 50
    # Passes over the training tokens: the first streams forward passes, later ones replay cached activations
    # (training.loop). Fractions allowed; > 1 holds the activations in memory (bf16).
    epochs: float = 1.0
    # SAEs per hook point of ``seed_modules`` (None: every module): the extra ones are the seed ceiling.
    seeds: int = 1
    seed_modules: list[str] | None = None
    # TopK k per module where it differs from ``k`` (e.g. {"att": 32, "mlp": 32}: res SAEs converge across layers
    # at a low k, att/mlp SAEs need more active latents to reconstruct their module's output)
    module_k: dict[str, int] | None = None
    device: str = "cpu"  # "cpu", "cuda" or "auto" (CUDA when available); not part of the cache key

    def __post_init__(self) -> None:
        check_atlas_name(self.atlas)
        self.modules = [Module.parse(m).value for m in self.modules]
        for m in DEFAULT_HOOKS:
            setattr(self, f"{m}_hook", normalize_hook(m, getattr(self, f"{m}_hook")))
        if not self.layers:
            raise InvalidInput("no layers chosen (give --layers, e.g. 4-9 or 3,5,7)")
        if any(layer < 0 for layer in self.layers):
            raise InvalidInput(f"layers {self.layers} are not valid (use layer indices ≥ 0)")
        self.layers = sorted(set(self.layers))
        for name in (
            "token_budget",
            "seq_len",
            "seqs_per_batch",
            "buffer_batches",
            "heldout_tokens",
            "train_batch_tokens",
        ):
            if getattr(self, name) <= 0:
                raise InvalidInput(f"{name} = {getattr(self, name)} is not valid (use a positive integer)")
        if self.seq_len < 8:
            raise InvalidInput(f"seq_len = {self.seq_len} is too short (use ≥ 8; 128 is the default)")
        if not 1.0 <= self.epochs <= 1000:
            raise InvalidInput(
                f"epochs = {self.epochs} is not valid (use 1 to 1000; fractions such as 2.5 are allowed)"
            )
        if not 1 <= self.seeds <= 8:
            raise InvalidInput(
                f"seeds = {self.seeds} is not valid (use 1, or 2+ to train seed-ceiling SAEs; at most 8)"
            )
        if self.module_k is not None:
            self.module_k = {Module.parse(m).value: int(v) for m, v in self.module_k.items()}
            if bad := {m: v for m, v in self.module_k.items() if not 0 < v <= self.d_sae}:
                raise InvalidInput(f"module k {bad} is not valid for d_sae = {self.d_sae} (use 1..d_sae)")
        if self.seed_modules is not None:
            self.seed_modules = [Module.parse(m).value for m in self.seed_modules]
            if missing := [m for m in self.seed_modules if m not in self.modules]:
                raise InvalidInput(
                    f"seed modules {missing} are not trained by this spec (modules: {', '.join(self.modules)})"
                )

    @property
    def tokens_per_seq(self) -> int:
        """Trained tokens per sequence (a sequence of seq_len predicts seq_len - 1 next tokens)."""
        return self.seq_len - 1

    @property
    def total_seqs(self) -> int:
        """Sequences phase 1 streams to cover the token budget."""
        return -(-self.token_budget // self.tokens_per_seq)

    def k_for(self, module: str) -> int:
        return (self.module_k or {}).get(module, self.k)

    @property
    def seeded_modules(self) -> list[str]:
        return self.modules if self.seed_modules is None else self.seed_modules

    def spec_hash(self) -> str:
        d = {k: v for k, v in asdict(self).items() if k != "device" and _HASH_DEFAULTS.get(k, _NO_DEFAULT) != v}
        return hashlib.sha256(json.dumps({"v": SPEC_VERSION, **d}, sort_keys=True).encode()).hexdigest()[:16]

    def resolved_device(self) -> str:
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise InvalidInput(
                f"device {self.device!r} was asked for but torch sees no CUDA GPU (use --device cpu or auto)"
            )
        return self.device


def parse_layers(text: str) -> list[int]:
    """``"4-9"`` → [4..9]; ``"3,5,7"``; ``"all"`` is resolved by the caller."""
    out: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                a, b = part.split("-", 1)
                out.extend(range(int(a), int(b) + 1))
            elif part:
                out.append(int(part))
    except ValueError:
        raise InvalidInput(f"layers {text!r} are not valid (use e.g. '4-9', '3,5,7' or 'all')") from None
    return out
