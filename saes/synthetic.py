"""Planted synthetic atlases: SAEs whose true lineage and category are known, for tests and demos.

Construction (per layer L, one SAE per module in ``modules``):
- ``att(L)`` and ``mlp(L)`` decoder rows are fresh random directions;
- each ``res(L)`` feature gets a category, cycling by index over the categories possible at L:
  - translated  = res(L-1)[j] + small noise            → s_res ≈ 0.99, modules low
  - processed   = res(L-1)[j] + module(L)[m]            → s_res ≈ s_mod ≈ 0.71 (≥ 0.63)
  - newborn     = module(L)[m] + small noise            → s_mod ≈ 0.99, s_res low
  - unexplained = a fresh random direction              → all low
  (the first layer has no res predecessor: its rows are built as newborn/unexplained, but its truth
  ``category`` is ``None`` — without a res(L-1) SAE the category is undefined (DESIGN.md); ``kind``
  keeps the construction. Without att/mlp only translated/unexplained).
- "low" is guaranteed, not just likely: random directions and noise are redrawn until their cosine
  with every decoder row they must not resemble is below ``LOW`` (0.2). "High" is ≥ ``HIGH`` (0.6).
  So any category thresholds in (0.2, 0.6) recover the planted categories exactly, and the planted
  parent is the unique top-1 match.
- Decoder rows get random norms in [0.5, 2] so that ingest's L2 normalisation matters.

Everything is deterministic in ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from queries.errors import InvalidInput
from queries.ids import Module
from saes.manifest import AtlasManifest, SAEEntry
from saes.weights import SAEWeights

LOW = 0.2
HIGH = 0.6
_NOISE = 0.12

HOOK_NAMES = {
    Module.RES: "blocks.{L}.hook_resid_post",
    Module.ATT: "blocks.{L}.hook_attn_out",
    Module.MLP: "blocks.{L}.hook_mlp_out",
}


@dataclass(frozen=True)
class PlantedFeature:
    layer: int
    index: int
    category: str | None  # translated | processed | newborn | unexplained; None in the first layer
    res_parent: int | None  # index in res(L-1) for translated/processed
    module_parent: tuple[Module, int] | None  # (att|mlp, index in it) for processed/newborn
    kind: str = ""  # how the row was built (the category's recipe; set in the first layer too)


@dataclass
class PlantedAtlas:
    name: str
    model: str
    d_model: int
    layers: list[int]
    modules: tuple[Module, ...]
    weights: dict[tuple[int, Module], SAEWeights]
    truth: dict[tuple[int, int], PlantedFeature] = field(default_factory=dict)

    def manifest(self, base_dir: str | Path = ".") -> AtlasManifest:
        entries = [SAEEntry(layer, mod, path=f"saes/{layer}-{mod.value}") for (layer, mod) in self.weights]
        return AtlasManifest(
            name=self.name, model=self.model, d_model=self.d_model, saes=entries, base_dir=Path(base_dir)
        )

    def write(self, folder: str | Path) -> Path:
        """Write every SAE as a SAELens directory under ``folder/saes`` and ``folder/atlas.toml``; returns the manifest path."""
        from saes.saelens_format import save_sae_dir

        folder = Path(folder)
        for (layer, mod), w in self.weights.items():
            save_sae_dir(folder / "saes" / f"{layer}-{mod.value}", w, model_name=self.model)
        return self.manifest(folder).write(folder / "atlas.toml")

    def categories(self, layer: int) -> list[str | None]:
        n = self.weights[(layer, Module.RES)].d_sae
        return [self.truth[(layer, i)].category for i in range(n)]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _fresh(
    rng: np.random.Generator,
    d: int,
    avoid: np.ndarray | None,
    limit: float = LOW,
    base: np.ndarray | None = None,
    noise: float = 1.0,
) -> np.ndarray:
    """A unit vector ``unit(base + noise·g)`` (or a random one) whose |cos| with every row of ``avoid`` is < limit."""
    for _ in range(10_000):
        g = rng.standard_normal(d)
        v = _unit(g if base is None else base + noise * _unit(g))
        if avoid is None or len(avoid) == 0 or float(np.max(np.abs(avoid @ v))) < limit:
            return v
    raise RuntimeError("could not draw a direction far from the given rows; raise d_model")  # pragma: no cover


def planted_atlas(
    name: str = "planted",
    *,
    n_layers: int = 4,
    first_layer: int = 0,
    d_model: int = 256,
    d_sae: int = 64,
    modules: tuple[Module | str, ...] = (Module.RES, Module.ATT, Module.MLP),
    architecture: str = "jumprelu",
    model: str = "synthetic/planted",
    seed: int = 0,
) -> PlantedAtlas:
    """Build a planted atlas in memory (see the module docstring for what is planted)."""
    mods = tuple(Module(m) if not isinstance(m, Module) else m for m in modules)
    if Module.RES not in mods:
        raise InvalidInput("a planted atlas needs res SAEs (include 'res' in modules)")
    side = [m for m in (Module.ATT, Module.MLP) if m in mods]
    if d_model < 128:
        raise InvalidInput(f"d_model = {d_model} is too small for a clean planted atlas (use d_model ≥ 128)")
    rng = np.random.default_rng(seed)
    layers = list(range(first_layer, first_layer + n_layers))
    unit_rows: dict[tuple[int, Module], np.ndarray] = {}
    truth: dict[tuple[int, int], PlantedFeature] = {}
    prev_res: np.ndarray | None = None
    for layer in layers:
        # module rows avoid res(L-1) so that a processed feature's two parents are nearly orthogonal
        mod_rows = {m: np.stack([_fresh(rng, d_model, prev_res) for _ in range(d_sae)]) for m in side}
        all_mod = np.concatenate(list(mod_rows.values())) if side else np.zeros((0, d_model))
        cats = []
        if prev_res is not None:
            cats.append("translated")
            if side:
                cats.append("processed")
        if side:
            cats.append("newborn")
        cats.append("unexplained")
        res_parents = rng.permutation(prev_res.shape[0]) if prev_res is not None else None
        free_mod = {m: list(rng.permutation(d_sae)) for m in side}
        rows: list[np.ndarray] = []
        for i in range(d_sae):
            cat = cats[i % len(cats)]
            res_parent: int | None = None
            module_parent: tuple[Module, int] | None = None
            if cat == "translated":
                assert prev_res is not None and res_parents is not None
                res_parent = int(res_parents[i % len(res_parents)])
                v = _fresh(rng, d_model, all_mod, base=prev_res[res_parent], noise=_NOISE)
            elif cat == "processed":
                assert prev_res is not None and res_parents is not None
                res_parent = int(res_parents[i % len(res_parents)])
                m = side[(i // len(cats)) % len(side)]
                module_parent = (m, int(free_mod[m].pop()))
                v = _unit(prev_res[res_parent] + mod_rows[m][module_parent[1]])
            elif cat == "newborn":
                m = side[(i // len(cats)) % len(side)]
                module_parent = (m, int(free_mod[m].pop()))
                avoid = prev_res if prev_res is not None else None
                v = _fresh(rng, d_model, avoid, base=mod_rows[m][module_parent[1]], noise=_NOISE)
            else:
                avoid_parts = [a for a in (prev_res, all_mod) if a is not None and len(a)]
                v = _fresh(rng, d_model, np.concatenate(avoid_parts) if avoid_parts else None)
            rows.append(v)
            truth[(layer, i)] = PlantedFeature(
                layer, i, cat if prev_res is not None else None, res_parent, module_parent, kind=cat
            )
        res_rows = np.stack(rows)
        unit_rows[(layer, Module.RES)] = res_rows
        for m in side:
            unit_rows[(layer, m)] = mod_rows[m]
        prev_res = res_rows
    weights: dict[tuple[int, Module], SAEWeights] = {}
    for (layer, mod), unit in unit_rows.items():
        norms = rng.uniform(0.5, 2.0, size=(unit.shape[0], 1))
        w_dec = (unit * norms).astype(np.float32)
        w = SAEWeights(
            W_dec=w_dec,
            W_enc=np.ascontiguousarray(unit.T, dtype=np.float32),
            b_enc=np.zeros(unit.shape[0], dtype=np.float32),
            b_dec=np.zeros(d_model, dtype=np.float32),
            threshold=np.full(unit.shape[0], 0.1, dtype=np.float32) if architecture == "jumprelu" else None,
            k=8 if architecture == "topk" else None,
            architecture=architecture,
            hook_name=HOOK_NAMES[mod].format(L=layer),
        )
        weights[(layer, mod)] = w
    ordered = dict(sorted(weights.items(), key=lambda kv: (kv[0][0], list(Module).index(kv[0][1]))))
    return PlantedAtlas(
        name=name, model=model, d_model=d_model, layers=layers, modules=mods, weights=ordered, truth=truth
    )


def write_planted_atlas(folder: str | Path, planted: PlantedAtlas | None = None, **kwargs: object) -> Path:
    """Build (unless given) and write a planted atlas to ``folder``; returns the path of its atlas.toml."""
    atlas = planted if planted is not None else planted_atlas(**kwargs)  # type: ignore[arg-type]
    return atlas.write(folder)
