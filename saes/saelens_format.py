"""Read and write SAELens-format SAE directories: ``cfg.json`` + ``sae_weights.safetensors``.

Written directories load with ``sae_lens.SAE.load_from_disk`` (cfg carries ``d_in``, ``d_sae``,
``architecture``, ``dtype``, ``metadata.hook_name`` / ``model_name``; weights ``W_enc``, ``W_dec``,
``b_enc``, ``b_dec`` and ``threshold`` for jumprelu). Reading accepts SAELens ≥ 6 configs and the older
flat layout (``hook_point``/``hook_name`` at top level). Reading needs no torch unless the file is bf16.

Every failure (missing dir or file, bad JSON, corrupt safetensors, shapes that contradict cfg.json)
raises :class:`queries.errors.SAEFileError` naming the directory and the fix.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from queries.errors import SAEFileError
from saes.weights import ARCHITECTURES, NORMALIZATIONS, TRANSCODERS, SAEWeights

log = logging.getLogger(__name__)

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
SAE_LENS_FORMAT_VERSION = "6.54.0"  # the cfg layout we write (SAELens ≥ 6)


def save_sae_dir(path: str | Path, weights: SAEWeights, *, model_name: str | None = None) -> Path:
    """Write ``weights`` as a SAELens directory at ``path`` (created). Missing encoder parts become
    the tied encoder / zeros so the directory is a complete SAELens SAE."""
    from safetensors.numpy import save_file

    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    arch = (
        weights.architecture
        if (weights.architecture in ARCHITECTURES or weights.architecture in TRANSCODERS)
        else "standard"
    )
    d_sae = weights.d_sae
    d_in = int(weights.W_enc.shape[0]) if weights.W_enc is not None else weights.d_in  # a transcoder's d_out may differ
    tensors: dict[str, np.ndarray] = {
        "W_dec": np.ascontiguousarray(weights.W_dec, dtype=np.float32),
        "W_enc": np.ascontiguousarray(
            weights.W_enc if weights.W_enc is not None else weights.W_dec.T, dtype=np.float32
        ),
        "b_enc": np.ascontiguousarray(
            weights.b_enc if weights.b_enc is not None else np.zeros(d_sae), dtype=np.float32
        ),
        "b_dec": np.ascontiguousarray(
            weights.b_dec if weights.b_dec is not None else np.zeros(weights.W_dec.shape[1]), dtype=np.float32
        ),
    }
    if weights.activation == "jumprelu":
        tensors["threshold"] = np.ascontiguousarray(
            weights.threshold if weights.threshold is not None else np.zeros(d_sae), dtype=np.float32
        )
    metadata: dict[str, Any] = {"sae_lens_version": SAE_LENS_FORMAT_VERSION}
    if weights.hook_name:
        metadata["hook_name"] = weights.hook_name
    if model_name:
        metadata["model_name"] = model_name
    if weights.hook_name_out:
        metadata["hook_name_out"] = weights.hook_name_out
    cfg: dict[str, Any] = {
        "d_in": d_in,
        "d_sae": d_sae,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": weights.apply_b_dec_to_input,
        "normalize_activations": weights.normalize_activations,
        "reshape_activations": "none",
        "metadata": metadata,
        "architecture": arch,
    }
    if arch == "topk":
        cfg["k"] = int(weights.k or 1)
    if arch in TRANSCODERS:
        cfg["d_out"] = int(weights.W_dec.shape[1])
    save_file(tensors, str(p / WEIGHTS_FILE))
    (p / CFG_FILE).write_text(json.dumps(cfg, indent=2))
    return p


def _read_cfg(p: Path, label: str) -> dict[str, Any]:
    cfg_path = p / CFG_FILE
    if not cfg_path.is_file():
        raise SAEFileError(
            f"SAE {label}: {cfg_path} is missing (a SAELens directory holds {CFG_FILE} and {WEIGHTS_FILE})"
        )
    try:
        cfg = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SAEFileError(f"SAE {label}: {cfg_path} is not valid JSON ({exc}); re-export the SAE") from None
    if not isinstance(cfg, dict):
        raise SAEFileError(f"SAE {label}: {cfg_path} must hold a JSON object")
    for key in ("d_in", "d_sae"):
        if not isinstance(cfg.get(key), int) or cfg[key] <= 0:
            raise SAEFileError(f"SAE {label}: {cfg_path} has {key} = {cfg.get(key)!r} (a positive integer is required)")
    return cfg


def _read_tensors(wpath: Path, names: list[str], label: str) -> dict[str, np.ndarray]:
    from safetensors import safe_open

    out: dict[str, np.ndarray] = {}
    try:
        with safe_open(str(wpath), framework="numpy") as f:
            keys = set(f.keys())
            for name in names:
                if name in keys:
                    out[name] = f.get_tensor(name)
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for corrupt files
        if "bf16" in str(exc).lower() or "bfloat16" in str(exc).lower():
            return _read_tensors_torch(wpath, names, label)
        raise SAEFileError(
            f"SAE {label}: {wpath} could not be read ({type(exc).__name__}: {str(exc)[:160]}); the file is corrupt or not safetensors — re-export it"
        ) from None
    return out


def _read_tensors_torch(wpath: Path, names: list[str], label: str) -> dict[str, np.ndarray]:
    from safetensors import safe_open

    try:
        with safe_open(str(wpath), framework="pt") as f:
            keys = set(f.keys())
            return {n: f.get_tensor(n).float().numpy() for n in names if n in keys}
    except Exception as exc:  # noqa: BLE001
        raise SAEFileError(f"SAE {label}: {wpath} could not be read ({exc}); re-export it") from None


def load_sae_dir(path: str | Path, *, decoder_only: bool = False, label: str | None = None) -> SAEWeights:
    """Read a SAELens directory into :class:`SAEWeights` (float32)."""
    p = Path(path)
    label = label or str(p)
    if not p.is_dir():
        raise SAEFileError(
            f"SAE {label}: directory {str(p)!r} does not exist (check path = in atlas.toml; it is relative to the manifest's folder)"
        )
    cfg = _read_cfg(p, label)
    wpath = p / WEIGHTS_FILE
    if not wpath.is_file():
        raise SAEFileError(f"SAE {label}: {wpath} is missing (a SAELens directory holds {CFG_FILE} and {WEIGHTS_FILE})")
    names = ["W_dec"] if decoder_only else ["W_dec", "W_enc", "b_enc", "b_dec", "threshold"]
    t = _read_tensors(wpath, names, label)
    if "W_dec" not in t:
        raise SAEFileError(
            f"SAE {label}: {wpath} has no W_dec tensor (SAELens stores the decoder as W_dec [d_sae, d_in])"
        )
    w_dec = np.ascontiguousarray(t["W_dec"], dtype=np.float32)
    d_in, d_sae = cfg["d_in"], cfg["d_sae"]
    d_out = int(cfg.get("d_out") or d_in)  # transcoders write into d_out
    if w_dec.ndim != 2 or w_dec.shape != (d_sae, d_out):
        raise SAEFileError(
            f"SAE {label}: W_dec has shape {tuple(w_dec.shape)} but cfg.json says [d_sae, d_out] = [{d_sae}, {d_out}] (the files do not belong together)"
        )
    meta = cfg.get("metadata") or {}
    hook_name = meta.get("hook_name") or cfg.get("hook_name") or cfg.get("hook_point")
    hook_name_out = meta.get("hook_name_out") or cfg.get("hook_name_out")
    arch = str(cfg.get("architecture") or ("topk" if cfg.get("activation_fn") == "topk" else "standard"))
    k = cfg.get("k") or (cfg.get("activation_fn_kwargs") or {}).get("k")
    w_enc = t.get("W_enc")
    if w_enc is not None and w_enc.shape != (d_in, d_sae):
        raise SAEFileError(
            f"SAE {label}: W_enc has shape {tuple(w_enc.shape)}, expected [d_in, d_sae] = [{d_in}, {d_sae}]"
        )
    f32 = lambda a: None if a is None else np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    return SAEWeights(
        W_dec=w_dec,
        W_enc=f32(w_enc),
        b_enc=f32(t.get("b_enc")),
        b_dec=f32(t.get("b_dec")),
        threshold=f32(t.get("threshold")),
        k=int(k) if k else None,
        architecture=arch,
        hook_name=hook_name,
        cfg=cfg,
        apply_b_dec_to_input=bool(cfg.get("apply_b_dec_to_input", True)),
        normalize_activations=_normalization(cfg, label),
        hook_name_out=hook_name_out,
    )


def _normalization(cfg: dict[str, Any], label: str) -> str:
    norm = str(cfg.get("normalize_activations") or "none")
    if norm not in NORMALIZATIONS:
        raise SAEFileError(
            f"SAE {label}: normalize_activations = {norm!r} is not supported (supported: {', '.join(NORMALIZATIONS)}); "
            "fold the normalisation into the weights with SAELens and save the SAE again"
        )
    return norm
