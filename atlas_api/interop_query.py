"""Query fields for the field's tools: stored attribution graphs and on-demand decoder neighbours.

Merged into ``Query`` by :func:`atlas_api.schema.build_schema`. Attribution graphs are imported with
``atlas graphs import`` (interop.attribution_graphs); every statement filters on ``AttributionGraph.complete``.
"""

from __future__ import annotations

import asyncio
import enum
import json
from collections import Counter
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON

from atlas_api.context import Context
from atlas_api.types import Feature, Module, Origin, OriginThresholds
from interop import neighbours
from interop.semantic import query_vector
from queries import atlases as qatlases
from queries import attribution_graphs as QG
from queries import errors as qerrors
from queries import features as qf
from queries import semantic as QS
from queries.flow_graph import Direction, FlowOptions, build_flow_graph_async, normalise_seeds

Info = strawberry.Info[Context, None]


@strawberry.enum(
    description="FULLTEXT: Lucene over labels and top contexts. SEMANTIC: nearest label embeddings (all-MiniLM-L6-v2)."
)
class SearchMode(enum.Enum):
    FULLTEXT = "FULLTEXT"
    SEMANTIC = "SEMANTIC"


async def semantic_rows(info: Info, text: str, atlas: str | None, limit: int) -> list[dict]:
    """Rows {f, score} of the features whose label embedding is nearest to ``text`` (cosine), best first."""
    vector = await asyncio.to_thread(query_vector, text)  # the first call loads the model (about a second)
    fix = f"run `atlas labels embed {atlas or 'ATLAS'}` first"
    try:
        rows = await info.context.read(
            QS.SEMANTIC_SEARCH,
            {"vector": vector, "atlas": atlas, "limit": limit, "scan": limit * 20 if atlas else limit},
        )
    except qerrors.QueryRejected as exc:
        raise qerrors.InvalidInput(f"semantic search is not set up ({exc.server_message}); {fix}") from exc
    if not rows and not await info.context.read(QS.ANY_EMBEDDED, {"atlas": atlas}):
        raise qerrors.InvalidInput(
            f"no feature{' of atlas ' + repr(atlas) if atlas else ''} has a label embedding yet; {fix}"
        )
    return rows


@strawberry.type(
    description="A stored attribution graph (circuit-tracer / Neuronpedia graph JSON), imported with `atlas graphs import`."
)
class AttributionGraph:
    id: str = strawberry.field(description="`{scan}/{slug}` unless given at import.")
    slug: str
    scan: str = strawberry.field(description="metadata.scan: the Neuronpedia model id of the graph.")
    prompt: str
    prompt_tokens: list[str]
    source_set: str | None = strawberry.field(
        description="metadata.feature_details.neuronpedia_source_set, when given."
    )
    n_nodes: int
    n_links: int
    n_linked: int = strawberry.field(
        description="Graph nodes linked to an atlas feature (see docs/api.md for the id mapping)."
    )
    imported_at: str | None

    @classmethod
    def from_row(cls, g: dict) -> AttributionGraph:
        return cls(
            id=g["id"],
            slug=g["slug"],
            scan=g["scan"],
            prompt=g["prompt"],
            prompt_tokens=list(g.get("prompt_tokens") or []),
            source_set=g.get("source_set"),
            n_nodes=int(g.get("n_nodes") or 0),
            n_links=int(g.get("n_links") or 0),
            n_linked=int(g.get("n_linked") or 0),
            imported_at=g.get("imported_at"),
        )

    @strawberry.field(description="The atlas features the graph's nodes name, with the ids of those nodes.")
    async def features(self, info: Info) -> list[GraphFeature]:
        rows = await info.context.read(QG.GRAPH_FEATURES, {"id": self.id})
        feats = await info.context.feature_loader.load_many([r["uid"] for r in rows])
        return [
            GraphFeature(node_ids=r["node_ids"], feature=Feature.from_row(f))
            for r, f in zip(rows, feats)
            if f is not None
        ]

    @strawberry.field(
        description=(
            "Where this prompt's features were born: the origin (as `origin`) of every atlas feature the graph uses, "
            "and a census of birth places by (layer, module)."
        )
    )
    async def feature_origins(self, info: Info, thresholds: OriginThresholds | None = None) -> GraphOrigins:
        t = thresholds or OriginThresholds()
        rows = await info.context.read(QG.GRAPH_FEATURES, {"id": self.id})
        uids = [r["uid"] for r in rows]
        out: list[GraphFeatureOrigin] = []
        if uids:
            opts = FlowOptions(
                direction=Direction.UPSTREAM,
                min_similarity=t.residual,
                module_min_similarity=t.module,
                max_nodes=max(info.context.settings.max_flow_nodes, 4 * len(uids)),
            )
            # One upstream graph for all features: with top-1 links a node's incoming edges do not depend on the seed.
            g = await build_flow_graph_async(info.context.read, uids, opts)
            for r in rows:
                o = qf.origin_from_flow_graph(g, r["uid"])
                out.append(GraphFeatureOrigin(node_ids=r["node_ids"], origin=Origin.from_domain(o)))
        census = Counter((o.origin.layer, o.origin.module) for o in out)
        return GraphOrigins(
            features=out,
            census=[
                BirthCount(layer=layer, module=mod, count=n)
                for (layer, mod), n in sorted(census.items(), key=lambda x: (x[0][0], x[0][1].value))
            ],
        )

    @strawberry.field(
        description="metadata and qParams of the graph as imported (nodes and links: `atlas graphs export`)."
    )
    async def metadata(self, info: Info) -> JSON:
        rows = await info.context.read(QG.GRAPH_BY_ID, {"id": self.id})
        if not rows:
            return cast(
                JSON, None
            )  # NOTE: the field is non-null in the schema, so this answers a GraphQL error (left as is)
        return cast(
            JSON,
            {
                "metadata": json.loads(rows[0]["g"]["metadata_json"]),
                "qParams": json.loads(rows[0]["g"]["qparams_json"]),
            },
        )


@strawberry.type
class GraphFeature:
    node_ids: list[str]
    feature: Feature


@strawberry.type
class GraphFeatureOrigin:
    node_ids: list[str]
    origin: Origin


@strawberry.type
class BirthCount:
    layer: int
    module: Module
    count: int


@strawberry.type
class GraphOrigins:
    features: list[GraphFeatureOrigin]
    census: list[BirthCount] = strawberry.field(
        description="How many of the graph's features were born at each (layer, module)."
    )


@strawberry.type(description="A stored graph that uses features of a lineage, and which ones.")
class AttributionGraphUse:
    graph: AttributionGraph
    features: list[str] = strawberry.field(description="uids of the lineage's features the graph uses.")
    node_ids: list[str]


@strawberry.type(
    description="A feature of the target SAE and the cosine of its decoder direction with the query feature's."
)
class SimilarHit:
    uid: str
    index: int
    cosine: float
    feature: Feature | None = strawberry.field(
        description="The feature's node (null if the target SAE's features are not in the graph)."
    )


@strawberry.type(
    description="Nearest decoder directions of one feature in one SAE, computed from the SAE files (FAISS, exact)."
)
class SimilarResult:
    uid: str
    sae: str
    d_in: int
    neighbours: list[SimilarHit]
    millis: float = strawberry.field(
        description="Time spent loading (first use of an SAE in this process) and searching."
    )
    cold: bool = strawberry.field(description="True when the target SAE was read from its files for this request.")


@strawberry.type
class InteropQuery:
    @strawberry.field(
        description=(
            "The top-k features of any SAE (`atlas/{layer}-{module}`, of this atlas or another atlas of the same model) "
            "whose decoder directions are nearest (cosine) to this feature's — computed from the SAE files, not the stored edges."
        )
    )
    async def similar(self, info: Info, uid: str, sae: str, k: int = 10, atlas: str | None = None) -> SimilarResult:
        names = neighbours.atlases_of(uid, sae, atlas)
        infos: dict[str, dict[str, Any] | None] = {}
        for n in set(names):
            rows = await info.context.read(qatlases.ATLAS_INFO, {"atlas": n})
            infos[n] = rows[0] if rows else None
        known = None
        if any(v is None for v in infos.values()):
            known = [r["name"] for r in await info.context.read(qatlases.ATLAS_NAMES)]
        r = await asyncio.to_thread(neighbours.similar_from, infos, uid, sae, k, atlas=atlas, known=known)
        feats = await info.context.feature_loader.load_many([n.uid for n in r.neighbours])
        return SimilarResult(
            uid=r.uid,
            sae=r.sae,
            d_in=r.d_in,
            millis=round(r.seconds * 1000, 2),
            cold=r.cold,
            neighbours=[
                SimilarHit(uid=n.uid, index=n.index, cosine=n.cosine, feature=Feature.from_row(f) if f else None)
                for n, f in zip(r.neighbours, feats)
            ],
        )

    @strawberry.field(description="Stored attribution graphs (complete imports only), by id.")
    async def attribution_graphs(self, info: Info, scan: str | None = None, limit: int = 50) -> list[AttributionGraph]:
        if not 0 <= limit <= info.context.settings.max_page_size:
            raise qerrors.InvalidInput(
                f"limit {limit} is out of range (valid: 0–{info.context.settings.max_page_size})"
            )
        rows = await info.context.read(QG.LIST_GRAPHS, {"scan": scan, "limit": limit})
        return [AttributionGraph.from_row(r["g"]) for r in rows]

    @strawberry.field(description="One stored attribution graph by id (null when none is stored under it).")
    async def attribution_graph(self, info: Info, id: str) -> AttributionGraph | None:
        rows = await info.context.read(QG.GRAPHS_BY_IDS, {"ids": [id]})
        return AttributionGraph.from_row(rows[0]["g"]) if rows else None

    @strawberry.field(
        description=(
            "Which stored attribution graphs use a feature of the upstream lineage of `uid` (the flow graph `lineage` "
            "returns with these options, the feature itself included), most features first."
        )
    )
    async def attribution_graphs_using_lineage(
        self,
        info: Info,
        uid: str,
        depth: int | None = None,
        min_similarity: float = 0.5,
        module_min_similarity: float = 0.15,
        atlas: str | None = None,
    ) -> list[AttributionGraphUse]:
        seeds = normalise_seeds(uid, atlas)
        opts = FlowOptions(
            direction=Direction.UPSTREAM,
            depth=depth,
            min_similarity=min_similarity,
            module_min_similarity=module_min_similarity,
            max_nodes=info.context.settings.max_flow_nodes,
        )
        g = await build_flow_graph_async(info.context.read, seeds, opts)
        rows = await info.context.read(QG.GRAPHS_USING_FEATURES, {"uids": [n.uid for n in g.nodes]})
        return [
            AttributionGraphUse(graph=AttributionGraph.from_row(r["g"]), features=r["uids"], node_ids=r["node_ids"])
            for r in rows
        ]
