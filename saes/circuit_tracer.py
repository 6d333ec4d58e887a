"""circuit-tracer's per-layer transcoders (PLTs): one ``.safetensors`` file per layer.

Layout (circuit-tracer's ``SingleLayerTranscoder.to_safetensors``): ``W_enc`` and ``W_dec`` both
``[d_transcoder, d_model]``, ``b_enc`` ``[d_transcoder]``, ``b_dec`` ``[d_model]``, optionally
``activation_function.threshold`` (JumpReLU), ``k`` (TopK) and ``W_skip``. A YAML next to the files may name
``feature_input_hook`` / ``feature_output_hook`` (TransformerLens suffixes, e.g. ``hook_resid_mid`` /
``hook_mlp_out``); without one, a PLT reads ``hook_resid_mid`` and writes ``hook_mlp_out`` (its definition).
The decoder writes the MLP output, so a PLT sits at ``module = "mlp"`` and matches like an MLP SAE.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from queries.errors import SAEFileError
from saes.weights import SAEWeights

DEFAULT_HOOKS = ("hook_resid_mid", "hook_mlp_out")
# circuit-tracer's own name for the MLP output -> TransformerLens's (its mlp.hook_in, the MLP input after ln2's
# gain, has no TransformerLens twin and is kept as is)
_HOOK_ALIASES = {"mlp.hook_out": "hook_mlp_out"}


def _hooks(path: Path) -> tuple[str, str]:
    """feature_input_hook / feature_output_hook from a YAML in the file's folder (the first that has them)."""
    import yaml

    for cfg_path in sorted(path.parent.glob("*.y*ml")):
        try:
            cfg: Any = yaml.safe_load(cfg_path.read_text())
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(cfg, dict) and "feature_output_hook" in cfg:
            hooks = (str(cfg.get("feature_input_hook") or DEFAULT_HOOKS[0]), str(cfg["feature_output_hook"]))
            return _HOOK_ALIASES.get(hooks[0], hooks[0]), _HOOK_ALIASES.get(hooks[1], hooks[1])
    return DEFAULT_HOOKS


def load_circuit_tracer_transcoder(
    path: str | Path, layer: int, *, decoder_only: bool = False, label: str | None = None
) -> SAEWeights:
    """Read one circuit-tracer PLT file as SAEWeights (float32; W_enc transposed to SAELens's ``[d_in, d_sae]``)."""
    from safetensors import safe_open

    p = Path(path)
    label = label or str(p)
    wanted = ["W_dec"] if decoder_only else ["W_dec", "W_enc", "b_enc", "b_dec", "activation_function.threshold", "k"]
    try:
        with safe_open(str(p), framework="pt") as f:
            keys = set(f.keys())
            t = {n: f.get_tensor(n).float().numpy() for n in wanted if n in keys}
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for corrupt files
        raise SAEFileError(
            f"SAE {label}: {p} could not be read as a circuit-tracer transcoder ({type(exc).__name__}: {str(exc)[:160]})"
        ) from None
    if "W_dec" not in t or t["W_dec"].ndim != 2:
        raise SAEFileError(
            f"SAE {label}: {p} has no 2-d W_dec (a circuit-tracer per-layer transcoder stores W_dec [d_transcoder, d_model]; "
            "cross-layer transcoders are not read yet)"
        )
    w_dec = np.ascontiguousarray(t["W_dec"], dtype=np.float32)
    w_enc = t.get("W_enc")
    if w_enc is not None and w_enc.shape != w_dec.shape:
        raise SAEFileError(
            f"SAE {label}: W_enc {list(w_enc.shape)} and W_dec {list(w_dec.shape)} differ (both are [d_transcoder, d_model])"
        )
    threshold = t.get("activation_function.threshold")
    k = int(t["k"].reshape(-1)[0]) if "k" in t else None
    hook_in, hook_out = _hooks(p)
    return SAEWeights(
        W_dec=w_dec,
        W_enc=None if w_enc is None else np.ascontiguousarray(w_enc.T),
        b_enc=t.get("b_enc"),
        b_dec=t.get("b_dec"),
        threshold=None if threshold is None else threshold.reshape(-1),
        k=k,
        architecture="jumprelu_transcoder" if threshold is not None else ("topk" if k else "transcoder"),
        hook_name=f"blocks.{layer}.{hook_in}",
        hook_name_out=f"blocks.{layer}.{hook_out}",
        cfg={"source": "circuit-tracer", "file": p.name},
        apply_b_dec_to_input=False,
    )
