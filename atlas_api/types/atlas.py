"""What an atlas holds: its SAEs with their controls, its per-layer statistics and its entry points.

``AtlasInfo.from_row`` / ``SAEInfo.from_row`` read the rows of ``queries.features.ATLASES``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import strawberry

from atlas_api.types.enums import Module
from atlas_api.types.feature import Feature
from atlas_api.types.pages import DensityHistogram
from queries import stats as qstats

if TYPE_CHECKING:
    from atlas_api.context import Context


@strawberry.type(description="One of an atlas's largest lineages: a residual feature with a large upstream flow graph.")
class EntryPoint:
    uid: str
    size: int = strawberry.field(
        description="Features in its upstream graph at the paper's cuts (top-1, residual ≥ 0.5, modules ≥ 0.15)."
    )
    length: int = strawberry.field(description="Residual layers of its chain.")

    @strawberry.field
    async def feature(self, info: strawberry.Info[Context, None]) -> Feature | None:
        row = await info.context.feature_loader.load(self.uid)
        return Feature.from_row(row) if row else None


@strawberry.type(
    description="A top-1 cosine score of a res SAE against one predecessor SAE, read against its controls."
)
class ScoreControl:
    predecessor: Module = strawberry.field(
        description="The predecessor SAE: RES = res(L-1), ATT = att(L), MLP = mlp(L)."
    )
    score_median: float | None = strawberry.field(
        description="Median top-1 cosine of this SAE's features against the predecessor."
    )
    null_median: float | None = strawberry.field(
        description="Null: median top-1 cosine against a randomly rotated copy of the predecessor decoder."
    )
    null_p99: float | None = None
    null_p999: float | None = strawberry.field(
        description="Null 99.9th percentile (the cut of the null:0.999 category rule)."
    )
    null_samples: int | None = None
    cut: float | None = strawberry.field(description="The cut that made this SAE's categories for this predecessor.")

    @classmethod
    def all_from_row(cls, s: dict[str, Any]) -> list[ScoreControl]:
        """The stored null controls of one res SAE node, one entry per predecessor that has a score."""
        return [
            cls(
                predecessor=Module(p),
                score_median=s.get(f"{p}_score_median"),
                null_median=s.get(f"{p}_null_median"),
                null_p99=s.get(f"{p}_null_p99"),
                null_p999=s.get(f"{p}_null_p999"),
                null_samples=s.get(f"{p}_null_n"),
                cut=s.get(f"cut_{p}"),
            )
            for p in ("res", "att", "mlp")
            if s.get(f"{p}_score_median") is not None
        ]


@strawberry.type
class SAEInfo:
    key: str
    layer: int
    module: Module
    d_sae: int | None
    d_in: int | None
    source: str | None
    hook_name: str | None
    architecture: str | None
    complete: bool | None
    neuronpedia_id: str | None = strawberry.field(
        default=None, description="Neuronpedia id `{model}/{layer}-{set}` where known."
    )
    explained_variance: float | None = None
    l0: float | None = None
    dead_fraction: float | None = None
    category_rule: str | None = strawberry.field(
        default=None,
        description="Res SAEs: the rule that made its features' categories "
        "(`fixed:0.5/0.25` or `null:0.999`); null without a res(L-1) SAE.",
    )
    controls: list[ScoreControl] = strawberry.field(
        default_factory=list, description="Res SAEs: each predecessor score against its null."
    )
    ceiling_median: float | None = strawberry.field(
        default=None,
        description="Ceiling: median top-1 cosine against an SAE of the same "
        "hook point trained with another seed (where one was trained).",
    )
    ceiling_share_ge_half: float | None = None
    density_histogram: DensityHistogram | None = strawberry.field(
        default=None, description="Where its features' firing densities lie (stored with the feature pages)."
    )
    median_norm: float | None = strawberry.field(
        default=None,
        description="The α unit at this hook point: median per-token ‖h‖ (position 0 and massive-norm tokens left out), "
        "stored by `atlas steerability`.",
    )

    @classmethod
    def from_row(cls, s: dict[str, Any]) -> SAEInfo:
        """One SAE node's properties (a map of queries.features.ATLASES' ``saes``)."""
        return cls(
            key=s["key"],
            layer=s["layer"],
            module=Module(s["module"]),
            d_sae=s.get("d_sae"),
            d_in=s.get("d_in"),
            source=s.get("source"),
            hook_name=s.get("hook_name"),
            architecture=s.get("architecture"),
            complete=s.get("complete"),
            neuronpedia_id=s.get("neuronpedia_id") or None,
            explained_variance=s.get("explained_variance"),
            l0=s.get("l0"),
            dead_fraction=s.get("dead_fraction"),
            category_rule=s.get("category_rule"),
            controls=ScoreControl.all_from_row(s),
            ceiling_median=s.get("ceiling_median"),
            ceiling_share_ge_half=s.get("ceiling_share_ge_half"),
            density_histogram=DensityHistogram(
                log10_bin_edges=list(s["density_edges"]),
                counts=list(s["density_counts"] or []),
                dead=int(s.get("density_dead") or 0),
            )
            if s.get("density_edges")
            else None,
            median_norm=s.get("median_norm"),
        )


@strawberry.type
class AtlasInfo:
    name: str
    model: str | None
    d_model: int | None
    complete: bool = strawberry.field(description="True only once every SAE, feature and edge is written.")
    min_layer: int | None
    max_layer: int | None
    n_layers: int | None
    n_saes: int
    n_features: int = strawberry.field(description="Sum of the SAEs' widths.")
    saes: list[SAEInfo]
    threshold_rule: str | None = strawberry.field(
        default=None, description="The category rule the atlas was ingested or recategorized with."
    )
    null_median_mean: float | None = strawberry.field(
        default=None, description="Mean over SAE pairs of the null median (chance top-1 cosine)."
    )
    null_p999_max: float | None = strawberry.field(
        default=None, description="Largest null 99.9th percentile over SAE pairs."
    )
    steer_alpha: float | None = strawberry.field(
        default=None, description="The α at which every feature's steerability was screened (Feature.steerability)."
    )
    steer_default_alpha: float | None = strawberry.field(
        default=None,
        description="The steer mutation's default strength in units ALPHA for features and SEEDS: the steering "
        "benchmark's median validation-chosen α for single features (see steerDefaultSource).",
    )
    steer_default_alpha_graph: float | None = strawberry.field(
        default=None, description="The same for flow graphs (strategies SINGLE and CUMULATIVE)."
    )
    steer_default_source: str | None = strawberry.field(
        default=None, description="Which benchmark run the defaults come from."
    )
    entry_points: list[EntryPoint] = strawberry.field(
        default_factory=list,
        description="The largest lineages (stored with the feature pages), largest first: where to start reading the atlas.",
    )

    @classmethod
    def from_row(cls, a: dict[str, Any], sae_rows: list[dict[str, Any]]) -> AtlasInfo:
        """An Atlas node's properties and its SAE nodes' (rows without a key are skipped)."""
        saes = [s for s in sae_rows if s.get("key")]
        layers = sorted({s["layer"] for s in saes}) or list(a.get("layers") or [])
        return cls(
            name=a["name"],
            model=a.get("model"),
            d_model=a.get("d_model"),
            complete=bool(a.get("complete")),
            min_layer=layers[0] if layers else None,
            max_layer=layers[-1] if layers else None,
            n_layers=a.get("n_layers"),
            n_saes=len(saes),
            n_features=sum(int(s.get("d_sae") or 0) for s in saes),
            saes=[SAEInfo.from_row(s) for s in saes],
            threshold_rule=a.get("threshold_rule"),
            null_median_mean=a.get("null_median_mean"),
            null_p999_max=a.get("null_p999_max"),
            steer_alpha=a.get("steer_alpha"),
            steer_default_alpha=a.get("steer_default_alpha"),
            steer_default_alpha_graph=a.get("steer_default_alpha_graph"),
            steer_default_source=a.get("steer_default_source"),
            entry_points=[EntryPoint(**e) for e in json.loads(a["entry_points"])] if a.get("entry_points") else [],
        )

    @strawberry.field(
        description="Per layer, how many residual features are translated/processed/newborn/unexplained (the paper's Fig. 3)."
    )
    async def layer_categories(self, info: strawberry.Info[Context, None]) -> list[LayerCategories]:
        rows = await info.context.read(qstats.LAYER_CATEGORIES, {"atlas": self.name})
        return [LayerCategories(**d) for d in qstats.layer_category_table(rows)]

    @strawberry.field(
        description="Histograms of sRes, sAtt, sMlp over the atlas's residual features: `bins` equal bins over [0, 1] (a negative cosine counts in the first)."
    )
    async def score_histograms(self, info: strawberry.Info[Context, None], bins: int = 20) -> list[ScoreHistogram]:
        qstats.check_bins(bins)
        rows = await info.context.read(qstats.SCORE_HISTOGRAMS, {"atlas": self.name, "bins": bins})
        return [ScoreHistogram(**d) for d in qstats.histogram_table(rows, bins)]


@strawberry.type(
    description="Residual features of one layer by category; `uncategorised` have no category (e.g. layer 0)."
)
class LayerCategories:
    layer: int
    total: int
    translated: int
    processed: int
    newborn: int
    unexplained: int
    uncategorised: int


@strawberry.type
class ScoreHistogram:
    score: str = strawberry.field(description="sRes, sAtt or sMlp.")
    bin_edges: list[float] = strawberry.field(description="bins + 1 edges over [0, 1].")
    counts: list[int]
