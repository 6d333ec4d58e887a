"""Flow graphs (lineage, circuits, paths) and origins, converted from queries' domain objects."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import strawberry
from strawberry.scalars import JSON

from atlas_api.types.enums import Category, Module
from atlas_api.types.feature import Feature
from queries import features as qfeatures
from queries.flow_graph import FlowGraph as QFlowGraph

if TYPE_CHECKING:
    from atlas_api.context import Context


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
