"""The atlas manifest (``atlas.toml``, docs/ingest.md): what an atlas is made of.

Invariants once :func:`load_manifest` returns (or an :class:`AtlasManifest` is built):
- the atlas name is valid (``queries.ids.check_atlas_name``);
- every ``[[sae]]`` has exactly one source: ``path`` | ``release`` + ``sae_id`` | ``synthetic``;
- no two SAEs share a (layer, module);
- the residual chain has no gap: every layer from the first to the last has a ``res`` SAE
  (matching runs ``res(L)`` against ``res(L-1)``; a missing link would silently cut every lineage);
- synthetic sources know their ``d_in`` (default: the manifest's ``d_model``);
- every ``[[ceiling]]`` (an SAE of the same hook point as one ``[[sae]]``, trained with another seed: the
  controls' ceiling, never ingested as features) names a (layer, module) that has an ``[[sae]]``.

Each violation raises :class:`queries.errors.ManifestError` with one line naming the value and the fix.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from queries.errors import InvalidInput, ManifestError
from queries.ids import Module, check_atlas_name
from queries.neuronpedia import parse_neuronpedia_id

_TOP_KEYS = {"name", "model", "d_model", "revision", "sae", "ceiling"}
_SAE_KEYS = {"layer", "module", "path", "release", "sae_id", "synthetic", "neuronpedia"}
_SYN_KEYS = {"d_sae", "seed", "d_in"}


@dataclass(frozen=True)
class SyntheticSpec:
    """A random SAE generated in memory (benchmarks, tests): unit-free Gaussian decoder rows."""

    d_sae: int
    seed: int = 0
    d_in: int | None = None


@dataclass(frozen=True)
class SAEEntry:
    """One ``[[sae]]`` table: the SAE reading ``module`` of ``layer``, and where its weights come from."""

    layer: int
    module: Module
    path: str | None = None
    release: str | None = None
    sae_id: str | None = None
    synthetic: SyntheticSpec | None = None
    # Neuronpedia id ``{model}/{layer}-{set}`` when given in the manifest (else taken from the registry / cfg.json).
    neuronpedia: str | None = None

    @property
    def source_kind(self) -> str:
        if self.path is not None:
            return "saelens_dir"
        if self.release is not None:
            return "saelens_registry"
        return "synthetic"

    def describe(self) -> str:
        """Short text for the SAE node's ``source`` property and for error messages."""
        if self.path is not None:
            return f"path:{self.path}"
        if self.release is not None:
            return f"registry:{self.release}/{self.sae_id}"
        assert self.synthetic is not None  # guaranteed by validation
        return f"synthetic:d_sae={self.synthetic.d_sae},seed={self.synthetic.seed}"

    @property
    def label(self) -> str:
        return f"{self.layer}-{self.module.value}"

    def to_toml_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"layer": self.layer, "module": self.module.value}
        if self.path is not None:
            out["path"] = self.path
        if self.release is not None:
            out["release"] = self.release
            out["sae_id"] = self.sae_id
        if self.synthetic is not None:
            syn: dict[str, Any] = {"d_sae": self.synthetic.d_sae, "seed": self.synthetic.seed}
            if self.synthetic.d_in is not None:
                syn["d_in"] = self.synthetic.d_in
            out["synthetic"] = syn
        if self.neuronpedia is not None:
            out["neuronpedia"] = self.neuronpedia
        return out


@dataclass
class AtlasManifest:
    name: str
    model: str
    d_model: int | None
    saes: list[SAEEntry]
    base_dir: Path = field(default_factory=Path.cwd)
    ceilings: list[SAEEntry] = field(default_factory=list)  # seed-ceiling SAEs (saes.controls), not features
    # What identifies this build of the SAE files when the table alone does not (atlas train writes its spec
    # hash): it is part of the fingerprint, so ingest replaces a retrained atlas instead of resuming into it.
    revision: str | None = None

    def __post_init__(self) -> None:
        try:
            check_atlas_name(self.name)
        except InvalidInput as exc:
            raise ManifestError(str(exc)) from None
        if self.d_model is not None and (not isinstance(self.d_model, int) or self.d_model <= 0):
            raise ManifestError(f"d_model = {self.d_model!r} is not valid (use a positive integer, e.g. 576)")
        self.saes = sorted(self.saes, key=lambda e: (e.layer, _MODULE_ORDER[e.module]))
        _check_entries(self.saes, self.d_model)
        for c in self.ceilings:
            if self.entry(c.layer, c.module) is None:
                raise ManifestError(
                    f"[[ceiling]] layer {c.layer} module {c.module.value!r} has no [[sae]] of the same hook point "
                    "(a ceiling compares two seeds of one hook point; add the [[sae]] or drop the [[ceiling]])"
                )
        self.base_dir = Path(self.base_dir)

    # -- derived views -------------------------------------------------------------------------
    @property
    def layers(self) -> list[int]:
        return sorted({e.layer for e in self.saes})

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def entry(self, layer: int, module: Module | str) -> SAEEntry | None:
        mod = Module(module) if not isinstance(module, Module) else module
        for e in self.saes:
            if e.layer == layer and e.module == mod:
                return e
        return None

    def to_toml(self) -> str:
        lines = [f"name = {_q(self.name)}", f"model = {_q(self.model)}"]
        if self.d_model is not None:
            lines.append(f"d_model = {self.d_model}")
        if self.revision is not None:
            lines.append(f"revision = {_q(self.revision)}")
        for table, e in [("sae", e) for e in self.saes] + [("ceiling", c) for c in self.ceilings]:
            lines.append("")
            lines.append(f"[[{table}]]")
            for key, value in e.to_toml_dict().items():
                if isinstance(value, dict):
                    inner = ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items())
                    lines.append(f"{key} = {{ {inner} }}")
                else:
                    lines.append(f"{key} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"

    def sha256(self) -> str:
        """Fingerprint of the manifest's content (not of the SAE weights): stored on the Atlas node."""
        return hashlib.sha256(self.to_toml().encode()).hexdigest()

    def write(self, path: str | Path) -> Path:
        """Write this manifest as ``atlas.toml`` at ``path`` (paths stay as given, relative to its folder)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.to_toml())
        return p


_MODULE_ORDER = {Module.RES: 0, Module.ATT: 1, Module.MLP: 2}


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return _q(v)
    raise TypeError(f"cannot write {v!r} to TOML")


def _check_entries(saes: list[SAEEntry], d_model: int | None) -> None:
    if not saes:
        raise ManifestError(
            "the manifest lists no SAEs (add at least one [[sae]] table with layer, module and a source)"
        )
    seen: set[tuple[int, Module]] = set()
    for e in saes:
        key = (e.layer, e.module)
        if key in seen:
            raise ManifestError(
                f"two SAEs for layer {e.layer} module {e.module.value!r} (each (layer, module) may appear once; remove one [[sae]] table)"
            )
        seen.add(key)
    res_layers = {e.layer for e in saes if e.module == Module.RES}
    all_layers = sorted({e.layer for e in saes})
    missing = [layer for layer in range(all_layers[0], all_layers[-1] + 1) if layer not in res_layers]
    if missing:
        raise ManifestError(
            f"gap in the layers: no res SAE for layer(s) {', '.join(map(str, missing))} "
            f"(the residual chain must cover every layer from {all_layers[0]} to {all_layers[-1]}; add the missing res SAEs or drop the layers around the gap)"
        )


def _parse_entry(i: int, raw: Any, d_model: int | None, table: str = "sae") -> SAEEntry:
    where = f"[[{table}]] #{i + 1}"
    if not isinstance(raw, dict):
        raise ManifestError(f"{where} is not a table (write it as [[{table}]] with layer, module and a source)")
    unknown = set(raw) - _SAE_KEYS
    if unknown:
        raise ManifestError(
            f"{where} has unknown key(s) {', '.join(sorted(unknown))} (valid: {', '.join(sorted(_SAE_KEYS))})"
        )
    layer = raw.get("layer")
    if not isinstance(layer, int) or isinstance(layer, bool) or layer < 0:
        raise ManifestError(f"{where}: layer = {layer!r} is not valid (use an integer ≥ 0)")
    if "module" not in raw:
        raise ManifestError(f"{where} (layer {layer}) has no module (valid: res, att, mlp)")
    try:
        module = Module.parse(str(raw["module"]))
    except InvalidInput:
        raise ManifestError(
            f"{where} (layer {layer}): unknown module {raw['module']!r} (valid: res, att, mlp)"
        ) from None
    where = f"[[{table}]] layer {layer} module {module.value!r}"
    np_id = raw.get("neuronpedia")
    if np_id is not None:
        if not isinstance(np_id, str):
            raise ManifestError(
                f'{where}: neuronpedia = {np_id!r} is not valid (give the id as a string, e.g. "gemma-2-2b/20-gemmascope-res-16k")'
            )
        try:
            parse_neuronpedia_id(np_id)
        except InvalidInput as exc:
            raise ManifestError(f"{where}: {exc}") from None
    sources = [k for k in ("path", "release", "synthetic") if k in raw]
    if len(sources) != 1:
        raise ManifestError(
            f"{where} names {len(sources)} sources ({', '.join(sources) or 'none'}); give exactly one of: "
            'path = "dir" | release = "..." + sae_id = "..." | synthetic = { d_sae = N, seed = S }'
        )
    if "sae_id" in raw and "release" not in raw:
        raise ManifestError(f"{where} has sae_id without release (a registry entry needs both)")
    if sources[0] == "path":
        if not isinstance(raw["path"], str) or not raw["path"]:
            raise ManifestError(
                f"{where}: path = {raw['path']!r} is not valid (give the SAELens directory as a string)"
            )
        return SAEEntry(layer, module, path=raw["path"], neuronpedia=np_id)
    if sources[0] == "release":
        if not isinstance(raw.get("sae_id"), str) or not isinstance(raw["release"], str):
            raise ManifestError(
                f'{where}: a registry entry needs release and sae_id as strings, e.g. sae_id = "layer_12/width_16k/canonical"'
            )
        return SAEEntry(layer, module, release=raw["release"], sae_id=raw["sae_id"], neuronpedia=np_id)
    syn = raw["synthetic"]
    if not isinstance(syn, dict) or set(syn) - _SYN_KEYS or "d_sae" not in syn:
        raise ManifestError(
            f"{where}: synthetic = {syn!r} is not valid (use {{ d_sae = 16384, seed = 7 }}, optionally d_in)"
        )
    vals: dict[str, int] = {k: syn[k] for k in _SYN_KEYS if k in syn}
    for k, v in vals.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < (0 if k == "seed" else 1):
            raise ManifestError(
                f"{where}: synthetic {k} = {v!r} is not valid (use a {'non-negative' if k == 'seed' else 'positive'} integer)"
            )
    d_in = vals.get("d_in", d_model)
    if d_in is None:
        raise ManifestError(
            f"{where}: a synthetic SAE needs its d_in (set d_model at the top of the manifest, or d_in in the synthetic table)"
        )
    return SAEEntry(
        layer,
        module,
        synthetic=SyntheticSpec(d_sae=vals["d_sae"], seed=vals.get("seed", 0), d_in=d_in),
        neuronpedia=np_id,
    )


def parse_manifest(data: dict[str, Any], base_dir: Path, where: str = "atlas.toml") -> AtlasManifest:
    """Validate a parsed TOML document and build the manifest."""
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ManifestError(
            f"{where} has unknown key(s) {', '.join(sorted(unknown))} (valid: name, model, d_model, revision, [[sae]], [[ceiling]])"
        )
    for key in ("name", "model"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ManifestError(
                f'{where} needs {key} = "..." (e.g. name = "smollm2-demo", model = "HuggingFaceTB/SmolLM2-135M-Instruct")'
            )
    try:
        check_atlas_name(data["name"])
    except InvalidInput as exc:
        raise ManifestError(f"{where}: {exc}") from None
    d_model = data.get("d_model")
    if d_model is not None and (not isinstance(d_model, int) or isinstance(d_model, bool) or d_model <= 0):
        raise ManifestError(f"{where}: d_model = {d_model!r} is not valid (use a positive integer, e.g. 576)")
    raw_saes = data.get("sae", [])
    if not isinstance(raw_saes, list):
        raise ManifestError(f"{where}: 'sae' must be a list of [[sae]] tables")
    entries = [_parse_entry(i, raw, d_model) for i, raw in enumerate(raw_saes)]
    revision = data.get("revision")
    if revision is not None and not isinstance(revision, str):
        raise ManifestError(f'{where}: revision = {revision!r} is not valid (give a string, e.g. revision = "3f2a9c")')
    raw_ceilings = data.get("ceiling", [])
    if not isinstance(raw_ceilings, list):
        raise ManifestError(f"{where}: 'ceiling' must be a list of [[ceiling]] tables")
    ceilings = [_parse_entry(i, raw, d_model, table="ceiling") for i, raw in enumerate(raw_ceilings)]
    return AtlasManifest(
        name=data["name"],
        model=data["model"],
        d_model=d_model,
        saes=entries,
        base_dir=base_dir,
        ceilings=ceilings,
        revision=revision,
    )


def load_manifest(path: str | Path) -> AtlasManifest:
    """Read and validate ``atlas.toml``; relative SAE paths resolve against its folder."""
    p = Path(path)
    if p.is_dir():
        p = p / "atlas.toml"
    if not p.is_file():
        raise ManifestError(f"manifest {str(p)!r} does not exist (give the path of an atlas.toml)")
    try:
        data = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"manifest {str(p)!r} is not valid TOML ({exc}); fix the syntax") from None
    return parse_manifest(data, base_dir=p.resolve().parent, where=str(p))
