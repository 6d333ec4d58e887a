"""One SAE feature, its FLOWS_TO neighbours, search hits and the paginated connection of features."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import strawberry

from atlas_api.types.enums import Category, Module
from atlas_api.types.pages import FeaturePage
from queries import errors as qerrors
from queries.flow_graph import FlowNode
from queries.ids import sae_key
from queries.neuronpedia import parse_neuronpedia_id

if TYPE_CHECKING:
    from atlas_api.context import Context

MAX_PAGES_PER_REQUEST = 100  # Feature.page per request (a page is bounded at write time to a few kB)


def _cat(value: str | None) -> Category | None:
    try:
        return Category(value) if value else None
    except ValueError:
        return None


@strawberry.type(
    description=(
        "Steering this feature alone. The screen adds α × the hook's median ‖h‖ along its unit decoder row at the last "
        "position of fixed neutral prompts (the atlas's steerAlpha; the prefix is not steered) and compares the "
        "next-token distribution with the unsteered one. The bench fields are the steering benchmark's, on its test "
        "prompts, for the seeds it tested."
    )
)
class Steerability:
    kl: float = strawberry.field(description="KL(steered ‖ unsteered) of the next token, nats, mean over the prompts.")
    tokens: list[str] = strawberry.field(description="The tokens whose log-probability rises most, largest first.")
    token_gains: list[float] = strawberry.field(description="Their mean log-probability gain (nats).")
    bench_gain: float | None = strawberry.field(
        description="Benchmark: test harmonic-mean score steering this feature alone minus unsteered's, on its concept "
        "(a point estimate over benchN generations; the benchmark's intervals are per method, across concepts)."
    )
    bench_n: int | None = strawberry.field(description="Benchmark: test generations behind benchGain.")
    bench_alpha: float | None = strawberry.field(description="Benchmark: the α chosen for it on validation prompts.")
    bench_concept: str | None = strawberry.field(description="Benchmark: the concept it was the seed of.")

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Steerability:
        return cls(
            kl=float(row["steer_kl"]),
            tokens=list(row.get("steer_tokens") or []),
            token_gains=[float(g) for g in row.get("steer_token_gains") or []],
            bench_gain=row.get("steer_bench_gain"),
            bench_n=row.get("steer_bench_n"),
            bench_alpha=row.get("steer_bench_alpha"),
            bench_concept=row.get("steer_bench_concept"),
        )


@strawberry.type(description="One SAE feature: uid `{atlas}/{layer}-{module}/{index}`.")
class Feature:
    uid: str
    atlas: str
    layer: int
    module: Module
    index: int
    category: Category | None = strawberry.field(
        description="Residual features only: translated/processed/newborn/unexplained; null where the layer has no res(L-1) SAE (the category is undefined there, not low)."
    )
    s_res: float | None = strawberry.field(description="Top-1 cosine with res(L-1) (residual features only).")
    s_att: float | None = strawberry.field(description="Top-1 cosine with att(L) (residual features only).")
    s_mlp: float | None = strawberry.field(description="Top-1 cosine with mlp(L) (residual features only).")
    label: str | None = None
    frequency: float | None = None
    decoder_norm: float | None = None
    d_sae: int | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Feature:
        return cls(
            uid=row["uid"],
            atlas=row["atlas"],
            layer=int(row["layer"]),
            module=Module(row["module"]),
            index=int(row["index"]),
            category=_cat(row.get("category")),
            s_res=row.get("s_res"),
            s_att=row.get("s_att"),
            s_mlp=row.get("s_mlp"),
            label=row.get("label"),
            frequency=row.get("frequency"),
            decoder_norm=row.get("decoder_norm"),
            d_sae=row.get("d_sae"),
        )

    @classmethod
    def from_flow_node(cls, n: FlowNode) -> Feature:
        return cls(
            uid=n.uid,
            atlas=n.atlas,
            layer=n.layer,
            module=n.module,
            index=n.index,
            category=_cat(n.category),
            s_res=n.s_res,
            s_att=n.s_att,
            s_mlp=n.s_mlp,
            label=n.label,
        )

    @strawberry.field(
        description="The feature's page on Neuronpedia when its SAE has a Neuronpedia id (SAELens registry, manifest or cfg.json); else null."
    )
    async def neuronpedia_url(self, info: strawberry.Info[Context, None]) -> str | None:
        key = sae_key(self.atlas, self.layer, self.module.value)
        np_id = (await info.context.neuronpedia_ids([key]))[key]
        return parse_neuronpedia_id(np_id).feature_url(self.index) if np_id else None

    @strawberry.field(
        description="Top-activating contexts (from the labelling pass); the activating token is marked «like this»."
    )
    async def top_contexts(self, info: strawberry.Info[Context, None]) -> list[str] | None:
        row = await info.context.details_loader.load(self.uid)
        return list(row["top_contexts"]) if row and row.get("top_contexts") is not None else None

    @strawberry.field(description="The largest activation seen in the labelling pass.")
    async def max_activation(self, info: strawberry.Info[Context, None]) -> float | None:
        row = await info.context.details_loader.load(self.uid)
        return row.get("max_activation") if row else None

    @strawberry.field(
        description=(
            "What steering this feature does (steering.steerability, `atlas steerability`): its next-token effect at the "
            "atlas's standard α on fixed neutral prompts, and the steering benchmark's figures where it tested this "
            "feature. Null where not measured."
        )
    )
    async def steerability(self, info: strawberry.Info[Context, None]) -> Steerability | None:
        row = await info.context.details_loader.load(self.uid)
        return Steerability.from_row(row) if row and row.get("steer_kl") is not None else None

    @strawberry.field(
        description=(
            "The feature's page data, computed once after training (training.feature_pages) and stored: firing density, "
            "activation histogram, top and quantile examples with per-token activations, logit lens. Null where not computed."
        )
    )
    async def page(self, info: strawberry.Info[Context, None]) -> FeaturePage | None:
        # A page is a few kB: bound how many one request may carry (the complexity estimate counts fields, not bytes).
        info.context.pages_served += 1
        if info.context.pages_served > MAX_PAGES_PER_REQUEST:
            raise qerrors.InvalidInput(
                f"a request may ask for at most {MAX_PAGES_PER_REQUEST} feature pages (this one asks for more): "
                "ask for `page` on fewer features per request"
            )
        raw = await info.context.page_loader.load(self.uid)
        return FeaturePage.from_json(raw) if raw else None

    @strawberry.field(description="Features flowing into this one (earlier modules), strongest first.")
    async def predecessors(
        self, info: strawberry.Info[Context, None], min_similarity: float = 0.0, top_k: int | None = None
    ) -> list[Link]:
        rows = await info.context.neighbours("pred", self.uid, min_similarity, top_k)
        return [Link.from_row(r) for r in rows]

    @strawberry.field(description="Features this one flows into (later modules), strongest first.")
    async def successors(
        self, info: strawberry.Info[Context, None], min_similarity: float = 0.0, top_k: int | None = None
    ) -> list[Link]:
        rows = await info.context.neighbours("succ", self.uid, min_similarity, top_k)
        return [Link.from_row(r) for r in rows]


@strawberry.type(description="A FLOWS_TO neighbour with the edge's similarity and candidate ranks.")
class Link:
    feature: Feature
    similarity: float
    target_rank: int | None = strawberry.field(
        description="Rank among the target's candidates from this module (0 = top-1)."
    )
    source_rank: int | None = strawberry.field(description="Rank among the source's residual successors (0 = top-1).")
    method: str = strawberry.field(
        default="cosine", description="The matcher that found this link (`cosine`: top-k cosine of decoder rows)."
    )

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> Link:
        return cls(
            feature=Feature.from_row(r["f"]),
            similarity=r["similarity"],
            target_rank=r.get("target_rank"),
            source_rank=r.get("source_rank"),
            method=r.get("method") or "cosine",
        )


@strawberry.type
class SearchHit:
    feature: Feature
    score: float


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class FeatureEdge:
    cursor: str
    node: Feature


@strawberry.type
class FeaturesConnection:
    total_count: int
    edges: list[FeatureEdge]
    page_info: PageInfo
