"""Loading SAE weights (:class:`saes.weights.SAEWeights`) from any manifest source.

Sources: a SAELens directory (``saes.saelens_format``), a SAELens registry entry (via ``sae_lens``,
imported lazily; needs the Hugging Face hub or its cache), or a synthetic random SAE.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

import numpy as np

from queries.errors import SAEFileError
from saes.manifest import SAEEntry
from saes.saelens_format import load_sae_dir
from saes.weights import ARCHITECTURES, SAEWeights

__all__ = ["ARCHITECTURES", "SAEWeights", "load_sae", "synthetic_sae"]  # SAEWeights's home is saes.weights

log = logging.getLogger(__name__)


def synthetic_sae(d_in: int, d_sae: int, seed: int) -> SAEWeights:
    """A random decoder (Gaussian rows, norms not 1) with a tied encoder; deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    w_dec = rng.standard_normal((d_sae, d_in), dtype=np.float32)
    w_dec *= np.float32(1.0 / np.sqrt(d_in))
    return SAEWeights(
        W_dec=w_dec, architecture="standard", hook_name=None, cfg={"synthetic": {"d_sae": d_sae, "seed": seed}}
    )


def _load_registry(entry: SAEEntry, decoder_only: bool) -> SAEWeights:
    try:
        from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory
    except ImportError as exc:  # pragma: no cover - sae_lens is a hard dependency
        raise SAEFileError(
            f"SAE {entry.label}: the registry source needs sae_lens ({exc}); pip install sae-lens"
        ) from None
    directory = get_pretrained_saes_directory()
    if entry.release not in directory:
        close = sorted(r for r in directory if entry.release and entry.release.split("-")[0] in r)[:8]
        raise SAEFileError(
            f"SAE {entry.label}: release {entry.release!r} is not in the SAELens registry"
            f" (similar releases: {', '.join(close) or 'none'}; see sae_lens pretrained_saes.yaml)"
        )
    ids = directory[entry.release].saes_map
    if entry.sae_id not in ids:
        shown = ", ".join(list(ids)[:8])
        raise SAEFileError(
            f"SAE {entry.label}: sae_id {entry.sae_id!r} is not in release {entry.release!r} (valid ids include: {shown}, ...)"
        )
    try:
        from sae_lens import SAE

        sae = SAE.from_pretrained(entry.release, entry.sae_id, device="cpu")
    except Exception as exc:  # noqa: BLE001 - network/hub errors come in many types
        raise SAEFileError(
            f"SAE {entry.label}: could not fetch {entry.release}/{entry.sae_id} from the Hugging Face hub ({type(exc).__name__}: {str(exc)[:200]}); "
            "download it where the hub is reachable and point path = at a SAELens directory instead"
        ) from None
    state = {k: v.detach().float().cpu().numpy() for k, v in sae.state_dict().items()}
    cfg = sae.cfg.to_dict()
    return SAEWeights(
        W_dec=np.ascontiguousarray(state["W_dec"], dtype=np.float32),
        W_enc=None if decoder_only else state.get("W_enc"),
        b_enc=None if decoder_only else state.get("b_enc"),
        b_dec=None if decoder_only else state.get("b_dec"),
        threshold=None if decoder_only else state.get("threshold"),
        k=cfg.get("k"),
        architecture=str(cfg.get("architecture", "standard")),
        hook_name=(cfg.get("metadata") or {}).get("hook_name"),
        cfg={k: v for k, v in cfg.items() if isinstance(v, (str, int, float, bool, dict, type(None)))},
        apply_b_dec_to_input=bool(cfg.get("apply_b_dec_to_input", True)),
        # from_pretrained has folded expected_average_only_in's registry factor into the weights when it knows one
        normalize_activations=str(cfg.get("normalize_activations") or "none"),
    )


def load_sae(entry: SAEEntry, base_dir: str | Path, *, decoder_only: bool = False) -> SAEWeights:
    """Load the SAE an ``[[sae]]`` entry names. ``decoder_only`` skips the encoder (all ingest needs)."""
    if entry.path is not None:
        p = Path(entry.path)
        if not p.is_absolute():
            p = Path(base_dir) / p
        if p.suffix == ".safetensors" and p.is_file():  # circuit-tracer's per-layer transcoder files
            from saes.circuit_tracer import load_circuit_tracer_transcoder

            return load_circuit_tracer_transcoder(p, entry.layer, decoder_only=decoder_only, label=entry.label)
        from saes.circuit_tracer import is_clt_folder, load_clt_layer

        if is_clt_folder(p):  # circuit-tracer's cross-layer transcoder: the features reading at entry.layer
            return load_clt_layer(p, entry.layer, decoder_only=decoder_only, label=entry.label)
        return load_sae_dir(p, decoder_only=decoder_only, label=entry.label)
    if entry.release is not None:
        return _load_registry(entry, decoder_only)
    spec = entry.synthetic
    if spec is None or spec.d_in is None:
        raise SAEFileError(f"SAE {entry.label}: a synthetic source needs d_in (set d_model in the manifest)")
    return synthetic_sae(spec.d_in, spec.d_sae, spec.seed)


@lru_cache(maxsize=1)
def _registry_neuronpedia_ids() -> dict[tuple[str, str], str]:
    """``(release, sae_id) -> neuronpedia id`` from sae_lens's bundled ``pretrained_saes.yaml``.

    Read straight from the file: importing sae_lens itself pulls in torch and TransformerLens (~10 s).
    """
    import importlib.util

    import yaml

    spec = importlib.util.find_spec("sae_lens")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained_saes.yaml"
    if not path.is_file():
        return {}
    with path.open() as fh:
        data = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    out: dict[tuple[str, str], str] = {}
    for release, value in (data or {}).items():
        for sae in (value or {}).get("saes") or []:
            if sae.get("neuronpedia"):
                out[(str(release), str(sae.get("id")))] = str(sae["neuronpedia"])
    return out


def registry_neuronpedia_id(release: str, sae_id: str) -> str | None:
    """The SAELens registry's ``neuronpedia`` field for one SAE (offline: sae_lens ships the registry)."""
    return _registry_neuronpedia_ids().get((release, sae_id))


def neuronpedia_id(entry: SAEEntry, base_dir: str | Path) -> str | None:
    """The SAE's Neuronpedia id ``{model}/{layer}-{set}``, where one is known.

    In order: the manifest's ``neuronpedia = ...``; for a registry entry, the registry's ``neuronpedia`` field;
    for a SAELens directory, ``neuronpedia_id`` in its cfg.json (SAELens writes it into the config's metadata).
    """
    if entry.neuronpedia:
        return entry.neuronpedia
    if entry.release is not None and entry.sae_id is not None:
        return registry_neuronpedia_id(entry.release, entry.sae_id)
    if entry.path is not None:
        import json

        p = Path(entry.path)
        cfg_path = (p if p.is_absolute() else Path(base_dir) / p) / "cfg.json"
        try:
            cfg = json.loads(cfg_path.read_text())
        except (OSError, ValueError):
            return None  # loading the SAE reports a missing or broken cfg.json with the fix
        if isinstance(cfg, dict):
            meta = cfg["metadata"] if isinstance(cfg.get("metadata"), dict) else {}
            found = meta.get("neuronpedia_id") or cfg.get("neuronpedia_id")
            return str(found) if found else None
    return None
