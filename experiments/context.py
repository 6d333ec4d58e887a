"""What an experiment runs on: an atlas (its SAEs, with encoders) and the model they were trained on.

``AtlasContext`` is built from a manifest (``atlas.toml``) or directly from weights (tests). An atlas
named on the command line is found by :func:`saes.locate.find_manifest` (``--manifest`` if given, else
ATLAS_STEER_MANIFESTS, else ``$ATLAS_CACHE_DIR/atlases/{name}/atlas.toml``), the same look-up as steering's.

Invariants: every SAE's ``d_in`` equals the model's ``d_model``; SAEs carry encoders (the experiments
read activations, so decoder-only sources are rejected with the reason).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from queries.errors import InvalidInput
from queries.ids import Module

if TYPE_CHECKING:
    from saes.manifest import AtlasManifest
    from saes.sources import SAEWeights
    from steering.model import LoadedModel

log = logging.getLogger(__name__)


@dataclass
class AtlasContext:
    name: str
    model: LoadedModel
    saes: dict[tuple[int, Module], SAEWeights]
    manifest_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for (layer, mod), w in self.saes.items():
            if w.d_in != self.model.d_model:
                raise InvalidInput(
                    f"SAE {layer}-{mod.value} of atlas {self.name!r} reads d_in = {w.d_in}, but model {self.model.name} has "
                    f"d_model = {self.model.d_model}; run the experiment with the model the atlas was built for"
                )
            if w.W_enc is None and w.architecture != "standard":
                raise InvalidInput(
                    f"SAE {layer}-{mod.value} of atlas {self.name!r} has no encoder; experiments need activations"
                )

    @property
    def layers(self) -> list[int]:
        return sorted({layer for layer, _ in self.saes})

    def has(self, layer: int, module: Module) -> bool:
        return (layer, module) in self.saes

    def predecessor_modules(self, layer: int) -> list[tuple[str, int, Module]]:
        """The predecessor SAEs of res(layer) present in the atlas: (short name, layer, module)."""
        out = []
        if self.has(layer - 1, Module.RES):
            out.append(("res", layer - 1, Module.RES))
        for short, mod in (("mlp", Module.MLP), ("att", Module.ATT)):
            if self.has(layer, mod):
                out.append((short, layer, mod))
        return out

    def target_layers(self) -> list[int]:
        """Layers with a res SAE and at least one predecessor SAE (where groups are defined)."""
        return [L for L in self.layers if self.has(L, Module.RES) and self.predecessor_modules(L)]


def load_context(
    atlas: str, *, manifest: str | Path | None = None, model: str | None = None, device: str = "cpu"
) -> AtlasContext:
    """Load the SAEs of an atlas (with encoders) and its model (``model`` overrides the manifest's)."""
    from saes.locate import find_manifest
    from saes.sources import load_sae
    from steering.model import load_model
    from steering.service import SteeringSettings

    # The same look-up as steering's, so `atlas experiment --atlas X` works wherever `atlas steer X` does.
    man: AtlasManifest = find_manifest(atlas, explicit=manifest, search=SteeringSettings().manifests)
    saes = {(e.layer, e.module): load_sae(e, man.base_dir) for e in man.saes}
    loaded = load_model(model or man.model, device=device)
    return AtlasContext(
        name=atlas,
        model=loaded,
        saes=saes,
        manifest_path=Path(manifest).expanduser() if manifest else man.base_dir / "atlas.toml",
    )
