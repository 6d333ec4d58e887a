"""circuit-tracer's transcoders: per-layer transcoders (PLTs, one ``.safetensors`` file per layer) and cross-layer
transcoders (CLTs, one folder of per-layer file pairs).

Layout (circuit-tracer's ``SingleLayerTranscoder.to_safetensors``): ``W_enc`` and ``W_dec`` both
``[d_transcoder, d_model]``, ``b_enc`` ``[d_transcoder]``, ``b_dec`` ``[d_model]``, optionally
``activation_function.threshold`` (JumpReLU), ``k`` (TopK) and ``W_skip``. A YAML next to the files may name
``feature_input_hook`` / ``feature_output_hook`` (TransformerLens suffixes, e.g. ``hook_resid_mid`` /
``hook_mlp_out``); without one, a PLT reads ``hook_resid_mid`` and writes ``hook_mlp_out`` (its definition).
The decoder writes the MLP output, so a PLT sits at ``module = "mlp"`` and matches like an MLP SAE.

CLT layout (circuit-tracer's ``CrossLayerTranscoder.to_safetensors``, also the layout of CLTs published on the hub):
a folder with, for every layer ``i`` of the ``n`` it spans (the model's layers 0..n-1), ``W_enc_{i}.safetensors``
(``W_enc_{i}`` ``[d_transcoder, d_model]``, ``b_enc_{i}``, ``b_dec_{i}``, optionally ``threshold_{i}``) and
``W_dec_{i}.safetensors`` (``W_dec_{i}`` ``[d_transcoder, n - i, d_model]``: slice ``j - i`` is what the features
reading at layer ``i`` write into layer ``j``'s MLP output). :func:`clt_layout` checks the whole folder from the
file headers (no tensor read); :func:`load_clt_layer` reads the features of one read layer as SAEWeights whose
``W_dec`` is the slice into their own layer; :func:`clt_slice` reads the slice into another layer.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
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

    folder = path if path.is_dir() else path.parent
    for cfg_path in sorted(folder.glob("*.y*ml")):
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
            "a cross-layer transcoder is a folder of W_enc_i/W_dec_i files: point path at that folder)"
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


_CLT_FILE = re.compile(r"^W_(enc|dec)_(\d+)\.safetensors$")


def is_clt_folder(path: Path) -> bool:
    """A folder holding circuit-tracer CLT files (``W_enc_{i}`` / ``W_dec_{i}`` ``.safetensors``)."""
    return path.is_dir() and any(_CLT_FILE.match(p.name) for p in path.iterdir())


@dataclass(frozen=True)
class CLTLayout:
    folder: Path
    n_layers: int  # layers the CLT spans: 0..n_layers-1 (the model's)
    d_transcoder: int
    d_model: int
    hooks: tuple[str, str]  # feature_input_hook, feature_output_hook (per layer)

    def written_layers(self, read_layer: int) -> range:
        return range(read_layer, self.n_layers)


def _shapes(path: Path) -> dict[str, list[int]]:
    import json

    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    return {k: [int(x) for x in v["shape"]] for k, v in header.items() if k != "__metadata__"}


def clt_layout(folder: str | Path, label: str | None = None) -> CLTLayout:
    """Check a CLT folder from its file headers: every layer 0..n-1 has both files, every ``W_enc_{i}`` is
    ``[d_transcoder, d_model]`` and every ``W_dec_{i}`` ``[d_transcoder, n - i, d_model]`` with one d_transcoder and
    one d_model. Any disagreement is one SAEFileError naming the file, what it holds and what was expected."""
    p = Path(folder)
    label = label or str(p)
    found: dict[str, set[int]] = {"enc": set(), "dec": set()}
    for f in p.iterdir():
        if m := _CLT_FILE.match(f.name):
            found[m[1]].add(int(m[2]))
    n = max(found["enc"] | found["dec"], default=-1) + 1
    for kind in ("enc", "dec"):
        missing = sorted(set(range(n)) - found[kind])
        if missing:
            raise SAEFileError(
                f"SAE {label}: cross-layer transcoder {p} spans layers 0–{n - 1} but has no "
                f"{', '.join(f'W_{kind}_{i}.safetensors' for i in missing[:5])} (a CLT folder holds W_enc_i and W_dec_i "
                "for every layer i it spans; copy the missing files)"
            )
    shapes: dict[str, list[int] | None] = {}
    for i in range(n):
        for kind in ("enc", "dec"):
            path = p / f"W_{kind}_{i}.safetensors"
            try:
                shapes[path.name] = _shapes(path).get(f"W_{kind}_{i}")
            except (OSError, ValueError, KeyError) as exc:
                raise SAEFileError(
                    f"SAE {label}: {path} is not a readable safetensors file ({type(exc).__name__}: {str(exc)[:120]})"
                ) from None
    # d_transcoder and d_model: what most files agree on, so that the odd file out is the one named
    dims = Counter((s[0], s[-1]) for s in shapes.values() if s and len(s) >= 2)
    d_tc, d_model = dims.most_common(1)[0][0] if dims else (-1, -1)
    for i in range(n):
        for kind in ("enc", "dec"):
            name = f"W_{kind}_{i}.safetensors"
            want = [d_tc, d_model] if kind == "enc" else [d_tc, n - i, d_model]
            if shapes[name] != want:
                raise SAEFileError(
                    f"SAE {label}: {name} holds W_{kind}_{i} of shape {shapes[name]}, expected {want} "
                    f"(a CLT spanning {n} layers with d_transcoder {d_tc} and d_model {d_model}: W_enc_i is "
                    "[d_transcoder, d_model], W_dec_i is [d_transcoder, n_layers - i, d_model]); re-export the CLT"
                )
    if n == 0:
        raise SAEFileError(f"SAE {label}: {p} holds no W_enc_i / W_dec_i files of a cross-layer transcoder")
    return CLTLayout(p, n, d_tc, d_model, _hooks(p))


def _read(path: Path, name: str, index: Any = None) -> np.ndarray:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        t = f.get_tensor(name) if index is None else f.get_slice(name)[index]
    return np.ascontiguousarray(t.float().numpy(), dtype=np.float32)


def clt_slice(layout: CLTLayout, read_layer: int, written_layer: int) -> np.ndarray:
    """``[d_transcoder, d_model]``: what the features reading at ``read_layer`` write into ``written_layer``."""
    if not read_layer <= written_layer < layout.n_layers:
        raise SAEFileError(
            f"cross-layer transcoder {layout.folder}: features reading at layer {read_layer} write layers "
            f"{read_layer}–{layout.n_layers - 1}, not {written_layer}"
        )
    name = f"W_dec_{read_layer}"
    return _read(layout.folder / f"{name}.safetensors", name, (slice(None), written_layer - read_layer))


def load_clt_layer(
    folder: str | Path, layer: int, *, decoder_only: bool = False, label: str | None = None
) -> SAEWeights:
    """The CLT features reading at ``layer`` as SAEWeights: ``W_dec`` is their slice into their own layer's MLP
    output; ``cfg["clt_layers"]`` is how many layers the CLT spans (so, which later layers they write)."""
    layout = clt_layout(folder, label)
    if not 0 <= layer < layout.n_layers:
        raise SAEFileError(
            f"SAE {label or folder}: the cross-layer transcoder {layout.folder} spans layers 0–{layout.n_layers - 1}; "
            f"it has no features reading at layer {layer} (fix the [[sae]] entry's layer)"
        )
    enc: dict[str, np.ndarray] = {}
    if not decoder_only:
        path = layout.folder / f"W_enc_{layer}.safetensors"
        enc = {n.rsplit("_", 1)[0]: _read(path, n) for n in _shapes(path) if n.endswith(f"_{layer}")}
    hook_in, hook_out = layout.hooks
    threshold = enc.get("threshold")
    return SAEWeights(
        W_dec=clt_slice(layout, layer, layer),
        W_enc=None if "W_enc" not in enc else np.ascontiguousarray(enc["W_enc"].T),
        b_enc=enc.get("b_enc"),
        b_dec=enc.get("b_dec"),
        threshold=None if threshold is None else threshold.reshape(-1),
        architecture="jumprelu_cross_layer_transcoder" if threshold is not None else "cross_layer_transcoder",
        hook_name=f"blocks.{layer}.{hook_in}",
        hook_name_out=f"blocks.{layer}.{hook_out}",
        cfg={"source": "circuit-tracer-clt", "folder": str(layout.folder), "clt_layers": layout.n_layers},
        apply_b_dec_to_input=False,
    )
