"""SAE weights in numpy (``SAEWeights``) and the SAE encode rules, defined once for every layer that encodes.

Layout follows SAELens: ``W_dec`` is ``[d_sae, d_in]`` (one row per feature), ``W_enc`` is ``[d_in, d_sae]``.
The encode rules mirror SAELens's forward for the architectures we read (standard, jumprelu, topk):

- normalisation (SAELens ``normalize_activations``): ``constant_norm_rescale`` scales each input to norm
  ``sqrt(d_in)``; ``layer_norm`` centres it and divides by its (unbiased) std + 1e-5; ``none`` and
  ``expected_average_only_in`` leave it as is (SAELens folds the latter's dataset-wide factor into the weights
  when it loads a registry SAE that has one, and so do we through ``SAE.from_pretrained``); decoding divides
  by the same per-token factor (:func:`output_scale`);
- input: ``x - b_dec`` when ``apply_b_dec_to_input`` (and ``b_dec`` exists), else ``x``;
- pre-activation: ``x @ W_enc + b_enc``; without ``W_enc`` (decoder-only sources) the encoder is tied, ``W_dec.T``;
- activation: standard ``relu(pre)``; jumprelu ``relu(pre)`` where ``pre > threshold`` else 0; topk ``relu`` of the
  ``k`` largest pre-activations, 0 elsewhere.

:meth:`SAEWeights.encode` applies them in numpy (the API and experiments need no torch for it);
``steering.saes`` applies the same functions to torch tensors (:func:`encoder_input` and :func:`pre_activation`
work on either, only the non-linearity is written per library).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from queries.errors import SAEFileError

A = TypeVar("A")  # a numpy array or a torch tensor: the rules below use only operators both support


NORMALIZATIONS = ("none", "expected_average_only_in", "constant_norm_rescale", "layer_norm")
_LN_EPS = 1e-5  # SAELens's run-time layer_norm epsilon


def _stats(x: Any) -> tuple[Any, Any, Any]:
    """Per-row L2 norm, mean and unbiased std of ``x`` (numpy or torch), keeping the last dim."""
    if isinstance(x, np.ndarray):
        return (np.linalg.norm(x, axis=-1, keepdims=True), x.mean(-1, keepdims=True), x.std(-1, ddof=1, keepdims=True))
    return x.norm(dim=-1, keepdim=True), x.mean(-1, keepdim=True), x.std(-1, keepdim=True)


def normalize_input(x: A, normalize: str, d_in: int) -> A:
    """SAELens's run-time input normalisation (``normalize_activations``), before ``b_dec`` is subtracted."""
    if normalize == "constant_norm_rescale":
        norm, _, _ = _stats(x)
        return x * (d_in**0.5 / norm)
    if normalize == "layer_norm":
        _, mu, std = _stats(x)
        return (x - mu) / (std + _LN_EPS)
    return x


def output_scale(x: Any, normalize: str, d_in: int) -> Any:
    """Per-token factor ``[..., 1]`` that turns SAE-space vectors back into input units (1.0 without normalisation):
    a feature with activation ``a`` contributes ``a · d · output_scale`` to the reconstruction of ``x``."""
    if normalize == "constant_norm_rescale":
        norm, _, _ = _stats(x)
        return norm / d_in**0.5
    if normalize == "layer_norm":
        _, _, std = _stats(x)
        return std
    return 1.0


def encoder_input(x: A, b_dec: A | None, apply_b_dec_to_input: bool, normalize: str = "none", d_in: int = 0) -> A:
    x = normalize_input(x, normalize, d_in)
    return x - b_dec if (b_dec is not None and apply_b_dec_to_input) else x  # type: ignore[operator]  # ndarray or Tensor


def pre_activation(x: A, w_enc: A, b_enc: A | None) -> A:
    pre = x @ w_enc  # type: ignore[operator]  # ndarray or Tensor
    return pre + b_enc if b_enc is not None else pre


ARCHITECTURES = ("standard", "jumprelu", "topk")
# SAELens transcoders (read the MLP input, write the MLP output) encode like the SAE they are built on; the skip
# variants' W_skip is a dense input->output map, not a feature, and plays no part in matching or steering.
TRANSCODERS = {
    "transcoder": "standard",
    "skip_transcoder": "standard",
    "jumprelu_transcoder": "jumprelu",
    "jumprelu_skip_transcoder": "jumprelu",
    # circuit-tracer's cross-layer transcoders, one read layer at a time (saes.circuit_tracer)
    "cross_layer_transcoder": "standard",
    "jumprelu_cross_layer_transcoder": "jumprelu",
}
CLT_ARCHITECTURES = frozenset({"cross_layer_transcoder", "jumprelu_cross_layer_transcoder"})


@dataclass
class SAEWeights:
    W_dec: np.ndarray  # float32 [d_sae, d_in]
    W_enc: np.ndarray | None = None  # float32 [d_in, d_sae]
    b_enc: np.ndarray | None = None  # [d_sae]
    b_dec: np.ndarray | None = None  # [d_in]
    threshold: np.ndarray | None = None  # [d_sae], JumpReLU only
    k: int | None = None  # TopK only
    architecture: str = "standard"
    hook_name: str | None = None
    cfg: dict[str, Any] = field(default_factory=dict)
    apply_b_dec_to_input: bool = True
    normalize_activations: str = "none"
    hook_name_out: str | None = None  # transcoders: where the decoder writes (hook_name is where it reads)

    @property
    def is_transcoder(self) -> bool:
        return self.architecture in TRANSCODERS or self.hook_name_out is not None

    @property
    def is_cross_layer(self) -> bool:
        """A CLT read layer: ``W_dec`` is only the slice into its own layer; it also writes every later one."""
        return self.architecture in CLT_ARCHITECTURES

    @property
    def activation(self) -> str:
        """The non-linearity: standard | jumprelu | topk (a transcoder's is its base SAE's)."""
        return TRANSCODERS.get(self.architecture, self.architecture)

    @property
    def d_sae(self) -> int:
        return int(self.W_dec.shape[0])

    @property
    def d_in(self) -> int:
        return int(self.W_dec.shape[1])

    def pre_activations(self, x: np.ndarray) -> np.ndarray:
        """``x @ W_enc + b_enc`` after the input rule (see the module docstring), ``[..., d_sae]``."""
        x = np.asarray(x, dtype=np.float32)
        if x.shape[-1] != self.d_in:
            raise SAEFileError(f"input has last dimension {x.shape[-1]}, but this SAE reads d_in = {self.d_in}")
        w_enc = self.W_enc if self.W_enc is not None else self.W_dec.T
        x_in = encoder_input(x, self.b_dec, self.apply_b_dec_to_input, self.normalize_activations, self.d_in)
        return pre_activation(x_in, w_enc, self.b_enc)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Feature activations ``[..., d_sae]`` for inputs ``[..., d_in]`` (SAELens semantics).

        Without ``W_enc`` (decoder-only sources) the encoder is tied: ``W_dec.T``.
        """
        pre = self.pre_activations(x)
        if self.activation == "jumprelu":
            thr = self.threshold if self.threshold is not None else 0.0
            return np.where(pre > thr, np.maximum(pre, 0.0), 0.0).astype(np.float32)
        if self.activation == "topk":
            k = int(self.k or 1)
            acts = np.maximum(pre, 0.0)
            if k < acts.shape[-1]:
                # zero all but the k largest pre-activations (ties resolved by argpartition)
                drop = np.argpartition(-pre, k, axis=-1)[..., k:]
                np.put_along_axis(acts, drop, 0.0, axis=-1)
            return acts.astype(np.float32)
        return np.maximum(pre, 0.0).astype(np.float32)
