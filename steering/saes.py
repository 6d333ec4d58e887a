"""An atlas's SAEs as torch tensors on the model's device, ready for interventions during generation.

Job: load the SAEs a steering request needs from the atlas manifest (``saes.sources.load_sae``, one
implementation of every source kind), check they fit the model (``d_in == d_model``, layer in range),
encode selected features on the fly, and measure each feature's *typical activation* — the unit of
additive strengths (docs/steering.md: "Strength units").

Invariants: an SAE is loaded at most once per bank (banks are cached per manifest); encoding follows
SAELens semantics (``b_dec`` subtracted from the input when the SAE says so; ReLU / JumpReLU / TopK);
typical activations are measured on a fixed calibration text, so they are deterministic per model.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from queries.errors import InvalidInput
from queries.ids import Module
from saes.projections import is_hook_z
from saes.weights import encoder_input, output_scale, pre_activation
from steering.architectures import output_projection
from steering.hooks import HookPoint, hook_name, run_capture, validate_points

if TYPE_CHECKING:
    import torch

    from saes.manifest import AtlasManifest
    from steering.model import LoadedModel

log = logging.getLogger(__name__)

# A neutral paragraph, written for this project, used to measure typical activations. Fixed so that
# strength units are reproducible; long enough (~200 tokens) to make most features fire at least once.
CALIBRATION_TEXT = (
    "The library opens at nine in the morning, and by ten the reading room is usually full. "
    "Students bring laptops and coffee; retired engineers come for the newspapers and the quiet. "
    "In the spring of last year the city council voted to extend the hours, after a long debate about "
    "money, safety and the cost of heating an old stone building. Some people argued that the funds "
    "should go to the hospital instead. Others said that a town without a library loses its memory. "
    "Meanwhile, the children's section added a small theatre where volunteers read stories about "
    "dragons, trains, distant planets and a cat who learned to play the piano. On Fridays a chess club "
    "meets near the window, and the scientists from the university sometimes give free talks about "
    "climate, music, mathematics, cooking, football, religion, medicine and the history of the sea. "
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))  # 5\n"
    "I think that the most important thing is to keep asking questions, even when the answers are hard."
)

# A token whose ‖h‖ exceeds this multiple of its hook point's median is a massive-norm (attention-sink-like) token:
# left out of the α unit's median, as position 0 is (steering-bench's calibration uses the same rule).
MASSIVE_NORM = 5.0


def robust_median_norm(norms: np.ndarray) -> float:
    """The median of per-token ‖h‖ without massive-norm tokens (> MASSIVE_NORM × the plain median)."""
    med = float(np.median(norms))
    return float(np.median(norms[norms <= MASSIVE_NORM * med]))


@dataclass
class HookSAE:
    """One SAE (hook point ``point``) as tensors. ``W_dec`` is ``[d_sae, d]``; ``W_enc`` ``[d, d_sae]``."""

    point: HookPoint
    W_dec: torch.Tensor
    W_enc: torch.Tensor
    b_enc: torch.Tensor | None
    b_dec: torch.Tensor | None
    threshold: torch.Tensor | None
    k: int | None
    architecture: str
    apply_b_dec_to_input: bool
    normalize: str = "none"  # SAELens normalize_activations (saes.weights)
    input_hook: str | None = None  # transcoders: where the encoder reads (the MLP input), not the point it writes
    edit_hook: str | None = None  # the SAE's own hook when not the point's (hook_z: read and steered there, flattened)

    @property
    def d_sae(self) -> int:
        return int(self.W_dec.shape[0])

    def check_indices(self, indices: list[int], atlas: str) -> None:
        bad = [i for i in indices if not 0 <= i < self.d_sae]
        if bad:
            raise InvalidInput(
                f"feature index {bad[0]} is out of range for SAE {atlas}/{self.point} (valid: 0–{self.d_sae - 1})"
            )

    def encoder_slice(self, idx: torch.Tensor) -> dict[str, Any]:
        """What :func:`encode_selected` needs to encode only the features ``idx`` (all of them for TopK)."""
        if self.architecture == "topk":
            return {
                "arch": "topk",
                "W_enc": self.W_enc,
                "b_enc": self.b_enc,
                "b_dec": self._bdec_in(),
                "k": self.k,
                "idx": idx,
                "normalize": self.normalize,
            }
        return {
            "arch": self.architecture,
            "normalize": self.normalize,
            "W_enc": self.W_enc[:, idx].contiguous(),
            "b_enc": None if self.b_enc is None else self.b_enc[idx].contiguous(),
            "b_dec": self._bdec_in(),
            "threshold": None if self.threshold is None else self.threshold[idx].contiguous(),
        }

    def _bdec_in(self) -> torch.Tensor | None:
        return self.b_dec if (self.b_dec is not None and self.apply_b_dec_to_input) else None

    def encode(self, h: torch.Tensor) -> torch.Tensor:
        """All activations ``[..., d_sae]``."""
        import torch

        return encode_selected(h, self.encoder_slice(torch.arange(self.d_sae, device=self.W_dec.device)))


def encode_selected(h: torch.Tensor, enc: dict[str, Any]) -> torch.Tensor:
    """SAE activations of the selected features for hidden states ``h`` ``[..., d]`` → ``[..., n]``."""
    import torch

    # The input and pre-activation rules are saes.weights's (one definition for numpy and torch).
    pre = pre_activation(
        encoder_input(h, enc["b_dec"], True, enc.get("normalize", "none"), h.shape[-1]), enc["W_enc"], enc["b_enc"]
    )
    arch = enc["arch"]
    if arch == "topk":
        k = int(enc["k"] or 1)
        top = torch.topk(pre, min(k, pre.shape[-1]), dim=-1)
        acts = torch.zeros_like(pre).scatter_(-1, top.indices, torch.relu(top.values))
        return acts[..., enc["idx"]]
    if arch == "jumprelu" and enc.get("threshold") is not None:
        return torch.where(pre > enc["threshold"], torch.relu(pre), torch.zeros_like(pre))
    return torch.relu(pre)


class SAEBank:
    """The SAEs of one atlas for one model, loaded lazily and checked against the model."""

    def __init__(self, manifest: AtlasManifest, lm: LoadedModel) -> None:
        self.manifest = manifest
        self.lm = lm
        self._saes: dict[HookPoint, HookSAE] = {}
        self._typical: dict[HookPoint, torch.Tensor] = {}
        self._median_norm: dict[HookPoint, float] = {}
        self._lock = threading.RLock()
        self.check_fits()

    @property
    def atlas(self) -> str:
        return self.manifest.name

    def check_fits(self) -> None:
        """Raise InvalidInput when the manifest's d_model or layers do not fit the model."""
        m = self.manifest
        if m.d_model is not None and m.d_model != self.lm.d_model:
            raise InvalidInput(
                f"atlas {m.name!r} has d_model {m.d_model}, but model {self.lm.name} has d_model {self.lm.d_model} "
                "(the atlas's SAEs were made for another model; steer with the model named in its atlas.toml)"
            )
        deepest = max(m.layers)
        if deepest >= self.lm.n_layers:
            raise InvalidInput(
                f"atlas {m.name!r} has SAEs at layer {deepest}, but model {self.lm.name} has layers 0–{self.lm.n_layers - 1} "
                "(the atlas was built for a deeper model; steer with the model named in its atlas.toml)"
            )

    def get(self, point: HookPoint) -> HookSAE:
        with self._lock:
            if point in self._saes:
                return self._saes[point]
            validate_points(self.lm, [point])
            entry = self.manifest.entry(point.layer, point.module)
            if entry is None:
                have = ", ".join(e.label for e in self.manifest.saes)
                raise InvalidInput(f"atlas {self.atlas!r} has no SAE at {point} (its SAEs: {have})")
            from saes.sources import load_sae

            w = load_sae(entry, self.manifest.base_dir)
            edit_hook = None
            if w.is_cross_layer:
                raise InvalidInput(
                    f"SAE {self.atlas}/{point} is a cross-layer transcoder: its features write into every later "
                    "layer's MLP output, which steering does not apply yet (steer a res/att/mlp SAE or a per-layer "
                    "transcoder feature instead)"
                )
            if is_hook_z(w.hook_name) and point.module is Module.ATT:
                # an attention SAE on hook_z steers where it reads: the per-head space, flattened
                edit_hook = f"blocks.{point.layer}.attn.hook_z"
                d_z = int(output_projection(self.lm.model, point.layer).shape[0])
                if w.d_in != d_z:
                    raise InvalidInput(
                        f"SAE {self.atlas}/{point} reads {w.hook_name} with d_in = {w.d_in}, but model {self.lm.name} "
                        f"has n_heads·d_head = {d_z} there (the SAE was made for another model)"
                    )
            elif w.d_in != self.lm.d_model:
                raise InvalidInput(
                    f"SAE {self.atlas}/{point} reads d_in = {w.d_in}, but model {self.lm.name} has d_model {self.lm.d_model} "
                    "(only SAEs on res/att/mlp outputs in d_model space can steer; see docs/steering.md, hook points)"
                )
            if edit_hook is None and not w.is_transcoder:
                edit_hook = self._own_hook(point, w.hook_name)
            sae = _to_torch(point, w, self.lm)
            sae.edit_hook = edit_hook
            self._saes[point] = sae
            log.info("loaded SAE %s/%s (%s, d_sae %d)", self.atlas, point, sae.architecture, sae.d_sae)
            return sae

    def _own_hook(self, point: HookPoint, name: str | None) -> str | None:
        """The SAE's own ``metadata.hook_name`` when it names another d_model hook than the point's (e.g. a res SAE on
        ``blocks.L.hook_resid_pre``): steering then reads and edits there. None: the point itself."""
        if not name:
            return None
        try:
            resolved = hook_name(self.lm, name)
        except InvalidInput:
            log.info(
                "SAE %s/%s names hook %r, which this model does not have; it steers at %s",
                self.atlas,
                point,
                name,
                point,
            )
            return None
        if resolved == hook_name(self.lm, point) or resolved.hook not in _D_MODEL_HOOKS:
            return None
        return str(resolved)

    def median_norm(self, point: HookPoint) -> float:
        """The α unit at ``point``: median per-token ‖h‖ at the hook its SAE edits, over :data:`CALIBRATION_TEXT`
        without position 0 and massive-norm tokens (:func:`robust_median_norm`). Strength α in units ALPHA adds
        a vector of norm α × this at every position."""
        with self._lock:
            if point in self._median_norm:
                return self._median_norm[point]
            sae = self.get(point)
            ids = self.lm.tokenizer(CALIBRATION_TEXT, return_tensors="pt").input_ids.to(self.lm.device)
            ids = ids[:, : self.lm.max_positions]
            source: HookPoint | str = sae.edit_hook or point
            with self.lm.lock:
                h = run_capture(self.lm, [source], ids)[source][0]  # [T, d] (hook_z: [T, heads, d_head])
            norms = h.flatten(1).float().norm(dim=-1)[1:].cpu().numpy()  # position 0 (the sink) left out
            self._median_norm[point] = robust_median_norm(norms)
            return self._median_norm[point]

    def typical_activation(self, point: HookPoint) -> torch.Tensor:
        """Per-feature typical activation ``[d_sae]`` at ``point``: the mean of its positive activations on
        :data:`CALIBRATION_TEXT`. A feature that never fires there gets the median over the features that
        do; if none fires, 1/10 of the median hidden-state norm divided by each decoder row's norm."""
        import torch

        with self._lock:
            if point in self._typical:
                return self._typical[point]
            sae = self.get(point)
            ids = self.lm.tokenizer(CALIBRATION_TEXT, return_tensors="pt").input_ids.to(self.lm.device)
            ids = ids[:, : self.lm.max_positions]  # learned position tables (GPT-2) end there
            source: HookPoint | str = sae.edit_hook or point
            if sae.input_hook is not None:  # a transcoder encodes the MLP input
                try:
                    hook_name(self.lm, sae.input_hook)
                    source = sae.input_hook
                except InvalidInput:
                    log.warning(
                        "SAE %s/%s reads %s, which this model cannot hook; strength units use its output point",
                        self.atlas,
                        point,
                        sae.input_hook,
                    )
            with self.lm.lock:
                h = run_capture(self.lm, [source], ids)[source][0]  # [T, d]
            if sae.edit_hook is not None and sae.edit_hook.endswith("attn.hook_z"):
                h = h.flatten(-2)  # hook_z: [T, heads, d_head] -> [T, heads·d_head]
            acts = sae.encode(h)  # [T, d_sae]
            pos = acts > 0
            count = pos.sum(0)
            mean = torch.where(count > 0, acts.sum(0) / count.clamp(min=1), torch.zeros_like(acts[0]))
            fired = mean[count > 0]
            if fired.numel():
                typical = torch.where(count > 0, mean, fired.median())
                if sae.normalize != "none":  # SAE units -> hidden-state units (the decode side of the normalisation)
                    typical = typical * torch.as_tensor(output_scale(h, sae.normalize, h.shape[-1])).mean()
            else:
                ref = h.norm(dim=-1).median() / 10
                typical = ref / sae.W_dec.norm(dim=-1).clamp(min=1e-8)
                log.warning(
                    "no feature of SAE %s/%s fires on the calibration text; using norm-based strength units",
                    self.atlas,
                    point,
                )
            self._typical[point] = typical
            return typical


# Editable hooks whose activation is d_model wide (an SAE's own hook_name may name any of them)
_D_MODEL_HOOKS = (
    "hook_resid_pre",
    "hook_resid_post",
    "hook_attn_out",
    "hook_mlp_out",
    "ln1.hook_normalized",
    "ln2.hook_normalized",
)


def _to_torch(point: HookPoint, w: Any, lm: LoadedModel) -> HookSAE:
    import torch

    dev, dt = lm.device, lm.dtype

    def t(a: np.ndarray | None) -> torch.Tensor | None:
        return None if a is None else torch.as_tensor(np.ascontiguousarray(a), dtype=dt, device=dev)

    w_dec = t(w.W_dec)
    assert w_dec is not None
    w_enc = t(w.W_enc) if w.W_enc is not None else w_dec.T.contiguous()  # tied encoder for decoder-only sources
    return HookSAE(
        point=point,
        W_dec=w_dec,
        W_enc=w_enc,
        b_enc=t(w.b_enc),
        b_dec=t(w.b_dec),
        threshold=t(w.threshold),
        k=w.k,
        architecture=str(w.activation),
        apply_b_dec_to_input=bool(getattr(w, "apply_b_dec_to_input", True)),
        normalize=str(getattr(w, "normalize_activations", "none")),
        input_hook=w.hook_name if w.is_transcoder else None,
    )
