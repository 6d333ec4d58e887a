"""GraphQL types of the API, and the typed expected errors other modules (e.g. steering) reuse.

``FeatureNotFound`` and ``InvalidInput`` are the expected-failure members of result unions
(``Feature | FeatureNotFound | InvalidInput``); :func:`error_result` turns a queries ``AtlasError`` into
one of them. Field names follow Neo4j's GraphQL library (``where``/``sort``/``...Connection``).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Annotated, Any, cast

import strawberry
from strawberry.scalars import JSON

from queries import domain
from queries import errors as qerrors
from queries import features as qfeatures
from queries import stats as qstats
from queries.domain import Category, Module
from queries.domain import Direction as LineageDirection
from queries.flow_graph import FlowGraph as QFlowGraph
from queries.flow_graph import FlowNode
from queries.ids import sae_key
from queries.neuronpedia import parse_neuronpedia_id

if TYPE_CHECKING:
    from atlas_api.context import Context


# -- enums: the domain's own (queries.domain), exposed as GraphQL enums -------------------------------
# strawberry.enum marks the class itself (and returns it), so the domain classes ARE the GraphQL enums.
strawberry.enum(
    Module,
    name="Module",
    description="Where in layer L an SAE reads: residual stream after the block, attention output, MLP output.",
)
strawberry.enum(
    Category, name="Category", description="The paper's semantic categories of a residual feature (paper §2.1)."
)
strawberry.enum(LineageDirection, name="LineageDirection")


@strawberry.enum
class SortDirection(enum.Enum):
    ASC = "ASC"
    DESC = "DESC"


# -- expected errors ---------------------------------------------------------------------------------
@strawberry.type(description="The feature does not exist in the graph.")
class FeatureNotFound:
    uid: str
    message: str


@strawberry.type(description="An argument is not acceptable; the message names the value, what is valid and the fix.")
class InvalidInput:
    message: str
    field: str | None = None


def error_result(exc: qerrors.AtlasError, field: str | None = None) -> FeatureNotFound | InvalidInput:
    """Map an expected failure onto its typed GraphQL result (anything else is re-raised by callers)."""
    if isinstance(exc, qerrors.FeatureNotFound):
        return FeatureNotFound(uid=exc.uid, message=str(exc))
    return InvalidInput(message=str(exc), field=field)


# -- features ----------------------------------------------------------------------------------------
MAX_PAGES_PER_REQUEST = 100  # Feature.page per request (a page is bounded at write time to a few kB)


def _cat(value: str | None) -> Category | None:
    try:
        return Category(value) if value else None
    except ValueError:
        return None


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


# -- feature pages (training.feature_pages; stored as one JSON string per feature) --------------------
@strawberry.type(description="A histogram: `counts[i]` values fell in [binEdges[i], binEdges[i+1]).")
class Histogram:
    bin_edges: list[float]
    counts: list[int]


@strawberry.type(description="A window of held-out tokens around one activation of the feature.")
class ActivationExample:
    tokens: list[str]
    activations: list[float] = strawberry.field(description="The feature's activation at every token of the window.")
    max_index: int = strawberry.field(description="Index into tokens of the token this example was picked for.")


@strawberry.type(
    description="Examples of one activation range: the strongest, or one quantile of the non-zero activations."
)
class ExampleGroup:
    name: str = strawberry.field(
        description="`top` (the strongest activations) or `q1`…`qN`: equal-count quantile groups of the non-zero activations, q1 lowest."
    )
    min_activation: float
    max_activation: float
    examples: list[ActivationExample]


@strawberry.type
class TokenWeight:
    token: str
    weight: float


@strawberry.type(
    description="Logit lens of the unit decoder direction d: W_U · (final-norm gain ⊙ d) over the vocabulary, up to one positive scale."
)
class LogitLens:
    positive: list[TokenWeight] = strawberry.field(description="The most promoted tokens, largest first.")
    negative: list[TokenWeight] = strawberry.field(description="The most suppressed tokens, most negative first.")
    histogram: Histogram = strawberry.field(description="All vocabulary logit weights of the direction.")


@strawberry.type(description="What a researcher judges a feature by, computed once over held-out tokens.")
class FeaturePage:
    heldout_tokens: int = strawberry.field(description="Held-out tokens the page was computed on (the denominator).")
    firing_tokens: int = strawberry.field(description="Held-out tokens on which the feature fired (activation > 0).")
    density: float = strawberry.field(description="firingTokens / heldoutTokens.")
    activation_histogram: Histogram = strawberry.field(
        description="Its non-zero activation values in equal bins over (0, max]."
    )
    example_groups: list[ExampleGroup]
    logit_lens: LogitLens | None = strawberry.field(
        description="Null for SAEs outside d_model space (attn.hook_z), whose direction needs W_O first."
    )

    @classmethod
    def from_json(cls, raw: str) -> FeaturePage:
        import json

        p = json.loads(raw)
        lg = p.get("logits")
        hist = p.get("act_hist") or {"edges": [], "counts": []}
        return cls(
            heldout_tokens=int(p["n_tokens"]),
            firing_tokens=int(p["firing"]),
            density=p["firing"] / p["n_tokens"] if p["n_tokens"] else 0.0,
            activation_histogram=Histogram(bin_edges=hist["edges"], counts=hist["counts"]),
            example_groups=[
                ExampleGroup(
                    name=g["name"],
                    min_activation=g["lo"],
                    max_activation=g["hi"],
                    examples=[
                        ActivationExample(tokens=e["t"], activations=e["a"], max_index=e["m"]) for e in g["examples"]
                    ],
                )
                for g in p.get("groups", [])
            ],
            logit_lens=LogitLens(
                positive=[TokenWeight(token=t, weight=w) for t, w in lg["pos"]],
                negative=[TokenWeight(token=t, weight=w) for t, w in lg["neg"]],
                histogram=Histogram(bin_edges=lg["edges"], counts=lg["counts"]),
            )
            if lg
            else None,
        )


@strawberry.type(
    description="Per SAE: how many of its features fire how often (log10 firing density over held-out tokens)."
)
class DensityHistogram:
    log10_bin_edges: list[float]
    counts: list[int] = strawberry.field(
        description="Features per log10-density bin (features that fired at least once)."
    )
    dead: int = strawberry.field(description="Features that never fired on the held-out tokens.")


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


# -- flow graphs -------------------------------------------------------------------------------------
@strawberry.type
class FlowEdge:
    source: str
    target: str
    similarity: float
    methods: list[str] = strawberry.field(
        default_factory=lambda: ["cosine"],
        description="The matchers that found this link (`cosine` today; one entry per matcher that found it).",
    )


@strawberry.type(description="A flow graph: features (nodes) and FLOWS_TO links (edges, earlier → later module).")
class FlowGraph:
    seeds: list[str]
    nodes: list[Feature]
    edges: list[FlowEdge]
    truncated: bool = strawberry.field(description="True when the node cap cut the graph short.")
    l_start: int | None = strawberry.field(description="First residual layer of the graph (the paper's l_start).")
    l_end: int | None = strawberry.field(description="Last residual layer of the graph (the paper's l_end).")
    _graph: strawberry.Private[QFlowGraph]

    @classmethod
    def from_graph(cls, g: QFlowGraph) -> FlowGraph:
        return cls(
            seeds=list(g.seeds),
            nodes=[Feature.from_flow_node(n) for n in g.nodes],
            edges=[
                FlowEdge(source=e.source, target=e.target, similarity=e.similarity, methods=list(e.methods))
                for e in g.edges
            ],
            truncated=g.truncated,
            l_start=g.l_start,
            l_end=g.l_end,
            _graph=g,
        )

    @strawberry.field(description="The graph as plain JSON (format feature-atlas/flow-graph@1).")
    def json(self) -> JSON:
        return cast(JSON, self._graph.to_json())  # JSON is strawberry's NewType over object

    @strawberry.field(
        description=(
            "The graph as circuit-tracer graph JSON (metadata/qParams/nodes/links) for its graph viewer; metadata.scan is the "
            "Neuronpedia model id when the SAEs have Neuronpedia ids."
        )
    )
    async def circuit_tracer_json(self, info: strawberry.Info[Context, None]) -> JSON:
        return cast(
            JSON, self._graph.to_circuit_tracer(neuronpedia=await info.context.neuronpedia_ids(self._graph.sae_keys()))
        )


@strawberry.type
class OriginStep:
    feature: Feature
    similarity: float | None = strawberry.field(
        description="Similarity of the link to the next (later) step; null for the queried feature."
    )
    category: Category | None


@strawberry.type(description="Where a feature was born: the start of its residual chain and what explains it there.")
class Origin:
    feature: Feature
    layer: int
    module: Module = strawberry.field(
        description="RES when it appears in the residual stream itself (unexplained, or layer 0)."
    )
    born_as: Feature = strawberry.field(description="The first residual feature of the chain.")
    source: Feature | None = strawberry.field(description="The att/mlp feature it came from, if any.")
    source_similarity: float | None
    chain: list[OriginStep] = strawberry.field(description="From the queried feature back to where it was born.")

    @classmethod
    def from_domain(cls, o: qfeatures.Origin) -> Origin:
        """The API's shape of a :class:`queries.features.Origin` (one conversion for every resolver)."""
        return cls(
            feature=Feature.from_flow_node(o.seed),
            layer=o.layer,
            module=Module(o.module),
            born_as=Feature.from_flow_node(o.born_as),
            source=Feature.from_flow_node(o.source) if o.source else None,
            source_similarity=o.source_similarity,
            chain=[
                OriginStep(
                    feature=Feature.from_flow_node(s.feature),
                    similarity=s.similarity,
                    category=Feature.from_flow_node(s.feature).category,
                )
                for s in o.chain
            ],
        )


@strawberry.type(description="The strongest path between two features: maximal product of similarities.")
class Path:
    score: float
    weakest_link: float
    graph: FlowGraph


@strawberry.type
class SearchHit:
    feature: Feature
    score: float


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
    entry_points: list[EntryPoint] = strawberry.field(
        default_factory=list,
        description="The largest lineages (stored with the feature pages), largest first: where to start reading the atlas.",
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


@strawberry.type
class SteeringRunFeature:
    uid: str
    coefficient: float | None
    mode: str | None


@strawberry.type(
    description="A stored steer run (SteeringRun node): its request, texts and the features it used with their coefficients."
)
class SteeringRun:
    id: str
    atlas: str
    created_at: str | None
    model: str | None
    strategy: str | None
    schedule: str | None
    mode: str | None
    prompts: list[str]
    baseline: list[str]
    steered: list[str]
    seeds: list[str]
    seed_strengths: list[float]
    features: list[SteeringRunFeature]

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> SteeringRun:
        return cls(
            id=r["id"],
            atlas=r["atlas"],
            created_at=r.get("created_at"),
            model=r.get("model"),
            strategy=r.get("strategy"),
            schedule=r.get("schedule"),
            mode=r.get("mode"),
            prompts=list(r.get("prompts") or []),
            baseline=list(r.get("baseline") or []),
            steered=list(r.get("steered") or []),
            seeds=list(r.get("seeds") or []),
            seed_strengths=[float(x) for x in r.get("seed_strengths") or []],
            features=[
                SteeringRunFeature(uid=u["uid"], coefficient=u.get("coefficient"), mode=u.get("mode"))
                for u in r.get("used") or []
            ],
        )


# -- filters, sorting, pagination (Neo4j GraphQL library shapes) --------------------------------------
@strawberry.input
class IntFilter:
    eq: int | None = None
    ne: int | None = None
    in_: list[int] | None = strawberry.field(default=None, name="in")
    lt: int | None = None
    lte: int | None = None
    gt: int | None = None
    gte: int | None = None


@strawberry.input
class FloatFilter:
    eq: float | None = None
    lt: float | None = None
    lte: float | None = None
    gt: float | None = None
    gte: float | None = None
    is_null: bool | None = None


@strawberry.input
class StringFilter:
    eq: str | None = None
    ne: str | None = None
    in_: list[str] | None = strawberry.field(default=None, name="in")
    contains: str | None = None
    starts_with: str | None = None
    ends_with: str | None = None
    is_null: bool | None = None


@strawberry.input
class ModuleFilter:
    eq: Module | None = None
    in_: list[Module] | None = strawberry.field(default=None, name="in")


@strawberry.input
class CategoryFilter:
    eq: Category | None = None
    in_: list[Category] | None = strawberry.field(default=None, name="in")
    is_null: bool | None = None


@strawberry.input(description="Feature filter; fields at one level are ANDed. Shaped like Neo4j's GraphQL library.")
class FeatureWhere:
    uid: StringFilter | None = None
    atlas: StringFilter | None = None
    layer: IntFilter | None = None
    module: ModuleFilter | None = None
    index: IntFilter | None = None
    category: CategoryFilter | None = None
    s_res: FloatFilter | None = None
    s_att: FloatFilter | None = None
    s_mlp: FloatFilter | None = None
    label: StringFilter | None = None
    frequency: FloatFilter | None = None
    decoder_norm: FloatFilter | None = None
    AND: list[FeatureWhere] | None = None
    OR: list[FeatureWhere] | None = None
    NOT: FeatureWhere | None = None


@strawberry.input(description="One sort key; give one field per entry, e.g. [{layer: ASC}, {sRes: DESC}].")
class FeatureSort:
    atlas: SortDirection | None = None
    layer: SortDirection | None = None
    module: SortDirection | None = None
    index: SortDirection | None = None
    category: SortDirection | None = None
    s_res: SortDirection | None = None
    s_att: SortDirection | None = None
    s_mlp: SortDirection | None = None
    frequency: SortDirection | None = None
    uid: SortDirection | None = None


def where_to_dict(w: FeatureWhere | None) -> dict[str, Any] | None:
    """Turn the input object into the plain filter dict queries.features.compile_where takes."""
    if w is None:
        return None
    out: dict[str, Any] = {}
    for key in domain.FILTERABLE_FIELDS:
        f = getattr(w, key)
        if f is None:
            continue
        cond: dict[str, Any] = {}
        for op in ("eq", "ne", "in_", "lt", "lte", "gt", "gte", "contains", "starts_with", "ends_with", "is_null"):
            if not hasattr(f, op):
                continue
            v = getattr(f, op)
            if v is None:
                continue
            if isinstance(v, enum.Enum):
                v = v.value
            elif isinstance(v, list):
                v = [x.value if isinstance(x, enum.Enum) else x for x in v]
            cond["in" if op == "in_" else op] = v
        out[key] = cond
    if w.AND:
        out["AND"] = [where_to_dict(x) for x in w.AND]
    if w.OR:
        out["OR"] = [where_to_dict(x) for x in w.OR]
    if w.NOT:
        out["NOT"] = where_to_dict(w.NOT)
    return out


def sort_to_list(sort: list[FeatureSort] | None) -> list[dict[str, str]]:
    out = []
    for s in sort or []:
        for key in domain.SORTABLE_FIELDS:
            v = getattr(s, key)
            if v is not None:
                out.append({key: v.value})
    return out


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


@strawberry.input
class OriginThresholds:
    residual: float = strawberry.field(
        default=domain.RESIDUAL_CUT, description="Residual cut t_R: the chain stops below it (paper 0.5)."
    )
    module: float = strawberry.field(
        default=domain.MODULE_CUT,
        description="Module cut: an att/mlp predecessor explains the birth at or above it (paper 0.15).",
    )


FeatureResult = Annotated[Feature | FeatureNotFound | InvalidInput, strawberry.union("FeatureResult")]
OriginResult = Annotated[Origin | FeatureNotFound | InvalidInput, strawberry.union("OriginResult")]
CircuitResult = Annotated[FlowGraph | FeatureNotFound | InvalidInput, strawberry.union("CircuitResult")]
PathResult = Annotated[Path | FeatureNotFound | InvalidInput, strawberry.union("PathResult")]
