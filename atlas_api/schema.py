"""The GraphQL schema: Query and Mutation roots and :func:`build_schema`.

The steering mutation lives in ``atlas_api/steer_mutation.py`` (``SteerMutation``, the ``steer`` field) and is
merged into ``Mutation`` here; the whole SDL is snapshotted in ``tests/unit/api/snapshots/schema.graphql``. Expected failures return typed union members (``FeatureNotFound``/``InvalidInput``);
``lineage`` returns its ``FlowGraph`` directly (so ``lineage { nodes ... }`` works) and reports expected
failures as GraphQL errors with ``extensions.code`` (see atlas_api.limits).
"""

from __future__ import annotations

import base64
import logging
from typing import Annotated, Any

import strawberry
from strawberry.tools import merge_types

from atlas_api.context import Context
from atlas_api.interop_query import InteropQuery, SearchMode, semantic_rows
from atlas_api.settings import ApiSettings
from atlas_api.steer_mutation import SteerMutation
from atlas_api.types import (
    AtlasInfo,
    CircuitResult,
    Feature,
    FeatureEdge,
    FeatureNotFound,
    FeatureResult,
    FeaturesConnection,
    FeatureSort,
    FeatureWhere,
    FlowGraph,
    LineageDirection,
    Module,
    Origin,
    OriginResult,
    OriginThresholds,
    PageInfo,
    Path,
    PathResult,
    SearchHit,
    SteeringRun,
    error_result,
    sort_to_list,
    where_to_dict,
)
from queries import errors as qerrors
from queries import features as qf
from queries.domain import MODULE_CUT, RESIDUAL_CUT, Direction
from queries.flow_graph import FlowOptions, build_flow_graph_async, normalise_seeds
from queries.ids import parse_uid
from queries.steering_runs import RUNS_FOR_ATLAS

log = logging.getLogger(__name__)

Info = strawberry.Info[Context, None]


def _page(info: Info, limit: int | None, offset: int) -> tuple[int, int]:
    s = info.context.settings
    limit = s.default_page_size if limit is None else limit
    if not (0 <= limit <= s.max_page_size):
        raise qerrors.InvalidInput(
            f"limit {limit} is out of range (valid: 0–{s.max_page_size}; page with offset or featuresConnection)"
        )
    if offset < 0:
        raise qerrors.InvalidInput(f"offset {offset} must not be negative")
    return limit, offset


def _cursor(i: int) -> str:
    return base64.b64encode(f"arrayconnection:{i}".encode()).decode()


def _uncursor(c: str) -> int:
    try:
        kind, _, num = base64.b64decode(c.encode(), validate=True).decode().partition(":")
        if kind != "arrayconnection":
            raise ValueError(kind)
        return int(num)
    except Exception:  # noqa: BLE001 - any malformed cursor is the same user error
        raise qerrors.InvalidInput(
            f"cursor {c!r} is not valid (use an endCursor returned by featuresConnection)"
        ) from None


def _uid(uid: str, atlas: str | None) -> str:
    return parse_uid(uid, atlas).uid


async def _flow(info: Info, seeds: list[str], options: FlowOptions, atlas: str | None):
    return await build_flow_graph_async(info.context.read, seeds, options, atlas=atlas)


@strawberry.type
class Query:
    @strawberry.field(description="One feature by uid (`atlas/12-res/77`, or `12/res/77` with `atlas`).")
    async def feature(self, info: Info, uid: str, atlas: str | None = None) -> FeatureResult:
        try:
            full = _uid(uid, atlas)
        except qerrors.AtlasError as exc:
            return error_result(exc, "uid")
        row = await info.context.feature_loader.load(full)
        if row is None:
            return FeatureNotFound(uid=full, message=str(qerrors.FeatureNotFound(full)))
        return Feature.from_row(row)

    @strawberry.field(
        description="Features matching `where`, sorted (uid breaks ties), paged by limit/offset (limit ≤ maxPageSize)."
    )
    async def features(
        self,
        info: Info,
        where: FeatureWhere | None = None,
        sort: list[FeatureSort] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Feature]:
        limit, offset = _page(info, limit, offset)
        text, params = qf.list_features_statement(where_to_dict(where), sort_to_list(sort), limit=limit, offset=offset)
        rows = await info.context.read(text, params)
        return [Feature.from_row(r["f"]) for r in rows]

    @strawberry.field(description="Relay-style pages of features with totalCount and pageInfo.")
    async def features_connection(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        where: FeatureWhere | None = None,
        sort: list[FeatureSort] | None = None,
    ) -> FeaturesConnection:
        start = _uncursor(after) + 1 if after else 0
        limit, offset = _page(info, first, start)
        w = where_to_dict(where)
        text, params = qf.list_features_statement(w, sort_to_list(sort), limit=limit + 1, offset=offset)
        ctext, cparams = qf.count_features_statement(w)
        rows = await info.context.read(text, params)
        total = (await info.context.read(ctext, cparams))[0]["n"]
        more = len(rows) > limit
        rows = rows[:limit]
        edges = [FeatureEdge(cursor=_cursor(offset + i), node=Feature.from_row(r["f"])) for i, r in enumerate(rows)]
        return FeaturesConnection(
            total_count=total,
            edges=edges,
            page_info=PageInfo(
                has_next_page=more,
                has_previous_page=offset > 0,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )

    @strawberry.field(
        description=(
            "The flow graph of a feature (paper §3): UPSTREAM follows top-k residual predecessors and attaches "
            "att/mlp predecessors ≥ moduleMinSimilarity as leaves, stopping below minSimilarity; DOWNSTREAM follows "
            "top-k residual successors; BOTH does both. depth counts layers (null = whole atlas)."
        )
    )
    async def lineage(
        self,
        info: Info,
        uid: str,
        direction: LineageDirection = LineageDirection.UPSTREAM,
        depth: int | None = None,
        min_similarity: float = RESIDUAL_CUT,
        module_min_similarity: float = MODULE_CUT,
        top_k: int = 1,
        modules: list[Module] | None = None,
        atlas: str | None = None,
        matcher: str = "cosine",  # follow only this matcher's edges (queries.domain.MATCHERS)
    ) -> FlowGraph:
        opts = FlowOptions(
            direction=direction,
            depth=depth,
            min_similarity=min_similarity,
            module_min_similarity=module_min_similarity,
            top_k=top_k,
            modules=frozenset(modules) if modules is not None else frozenset({Module.ATT, Module.MLP}),
            max_nodes=info.context.settings.max_flow_nodes,
            matcher=matcher,
        )
        return FlowGraph.from_graph(await _flow(info, [uid], opts, atlas))

    @strawberry.field(
        description="Where the feature was born: the start of its residual chain, the module that explains it, the chain with categories."
    )
    async def origin(
        self, info: Info, uid: str, thresholds: OriginThresholds | None = None, atlas: str | None = None
    ) -> OriginResult:
        t = thresholds or OriginThresholds()
        try:
            full = _uid(uid, atlas)
            opts = FlowOptions(
                direction=Direction.UPSTREAM,
                min_similarity=t.residual,
                module_min_similarity=t.module,
                max_nodes=info.context.settings.max_flow_nodes,
            )
            g = await _flow(info, [full], opts, None)
        except qerrors.AtlasError as exc:
            if isinstance(exc, qerrors.DatabaseUnavailable):
                raise
            return error_result(exc, "uid")
        return Origin.from_domain(qf.origin_from_flow_graph(g, full))

    @strawberry.field(
        description="The subgraph connecting a set of features across layers: every feature on a path between two of them with all links ≥ minSimilarity, within maxDepth layers."
    )
    async def circuit(
        self, info: Info, uids: list[str], min_similarity: float = 0.3, max_depth: int = 6, atlas: str | None = None
    ) -> CircuitResult:
        s = info.context.settings
        try:
            seeds = normalise_seeds(uids, atlas)
            if len(seeds) < 2 or len(seeds) > s.max_circuit_seeds:
                raise qerrors.InvalidInput(f"circuit needs 2–{s.max_circuit_seeds} distinct features, got {len(seeds)}")
            if not (1 <= max_depth <= s.max_circuit_depth):
                raise qerrors.InvalidInput(f"maxDepth {max_depth} is out of range (valid: 1–{s.max_circuit_depth})")
            g = await _connecting(info, seeds, min_similarity, max_depth, None)
        except qerrors.AtlasError as exc:
            if isinstance(exc, qerrors.DatabaseUnavailable):
                raise
            return error_result(exc, "uids")
        return FlowGraph.from_graph(g)

    @strawberry.field(
        name="path",
        description="The strongest path from one feature to a later one (maximal product of similarities, links ≥ minSimilarity).",
    )
    async def path(
        self,
        info: Info,
        from_: Annotated[str, strawberry.argument(name="from")],
        to: str,
        min_similarity: float = 0.3,
        max_depth: int = 12,
        atlas: str | None = None,
    ) -> PathResult:
        s = info.context.settings
        try:
            a, b = _uid(from_, atlas), _uid(to, atlas)
            if not (1 <= max_depth <= s.max_circuit_depth):
                raise qerrors.InvalidInput(f"maxDepth {max_depth} is out of range (valid: 1–{s.max_circuit_depth})")
            g = await _connecting(info, [a, b], min_similarity, max_depth, (a, b))
            best = qf.strongest_path(g, a, b)
            if best is None:
                raise qerrors.InvalidInput(
                    f"no path from {a} to {b} with every link ≥ {min_similarity} within {max_depth} layers (lower minSimilarity or raise maxDepth)"
                )
        except qerrors.AtlasError as exc:
            if isinstance(exc, qerrors.DatabaseUnavailable):
                raise
            return error_result(exc, "from")
        return Path(score=best.score, weakest_link=best.min_similarity, graph=FlowGraph.from_graph(best.graph))

    @strawberry.field(
        description=(
            "Search over feature labels and top contexts, best first: FULLTEXT (default, Lucene syntax) or SEMANTIC "
            "(nearest label embeddings; needs `atlas labels embed`)."
        )
    )
    async def search(
        self, info: Info, text: str, atlas: str | None = None, limit: int = 20, mode: SearchMode = SearchMode.FULLTEXT
    ) -> list[SearchHit]:
        limit, _ = _page(info, limit, 0)
        if not text.strip():
            raise qerrors.InvalidInput('search text is empty (give words to look for, e.g. "wedding")')
        if mode is SearchMode.SEMANTIC:
            rows = await semantic_rows(info, text, atlas, limit)
            return [SearchHit(feature=Feature.from_row(r["f"]), score=r["score"]) for r in rows]
        try:
            rows = await info.context.read(
                qf.SEARCH, {"text": text, "atlas": atlas, "limit": limit, "scan": limit * 10 if atlas else limit}
            )
        except qerrors.QueryRejected as exc:
            raise qerrors.InvalidInput(
                f"search text {text!r} is not a valid full-text query ({exc.server_message}); quote it or escape Lucene characters like : ( ) ~ *"
            ) from exc
        return [SearchHit(feature=Feature.from_row(r["f"]), score=r["score"]) for r in rows]

    @strawberry.field(description="Atlases with their SAEs, layer range, sizes and whether each is complete.")
    async def atlases(self, info: Info, name: str | None = None) -> list[AtlasInfo]:
        rows = await info.context.read(qf.ATLASES, {"name": name})
        return [AtlasInfo.from_row(r["atlas"], r["saes"]) for r in rows]

    @strawberry.field(
        description="Stored steer runs of an atlas (SteeringRun nodes), newest first, with the features each used."
    )
    async def steering_runs(self, info: Info, atlas: str, limit: int = 20) -> list[SteeringRun]:
        limit, _ = _page(info, limit, 0)
        rows = await info.context.read(RUNS_FOR_ATLAS, {"atlas": atlas, "limit": limit})
        return [SteeringRun.from_row({**r["run"], "used": r["used"]}) for r in rows]


async def _connecting(
    info: Info, seeds: list[str], min_similarity: float, max_depth: int, pair: tuple[str, str] | None
):
    if not -1.0 <= min_similarity <= 1.0:
        raise qerrors.InvalidInput(f"minSimilarity {min_similarity} is out of range (valid: -1.0–1.0)")
    reach = await info.context.read(
        qf.CIRCUIT_REACH, {"uids": seeds, "min_sim": min_similarity, "max_depth": max_depth}
    )
    found = {r["uid"] for r in reach}
    for u in seeds:
        if u not in found:
            raise qerrors.FeatureNotFound(u)
    members = qf.circuit_members(reach, max_depth, ordered_pair=pair)
    if len(members) > info.context.settings.max_flow_nodes:
        raise qerrors.InvalidInput(
            f"the circuit has {len(members)} features, more than the cap of {info.context.settings.max_flow_nodes} (raise minSimilarity or lower maxDepth)"
        )
    rows = await info.context.read(qf.SUBGRAPH, {"uids": members, "min_sim": min_similarity})
    g = qf.subgraph_from_rows(seeds, rows)
    return qf.prune_to_connecting(g, ordered_pair=pair)


@strawberry.type
class LabelMutation:
    @strawberry.mutation(
        description="Set (or clear with null) a feature's human label; it becomes searchable. Needs the API key when one is configured."
    )
    async def set_label(self, info: Info, uid: str, label: str | None, atlas: str | None = None) -> FeatureResult:
        try:
            full = _uid(uid, atlas)
            if label is not None and len(label) > 2_000:
                raise qerrors.InvalidInput(f"label is {len(label)} characters long (valid: at most 2000)")
        except qerrors.AtlasError as exc:
            return error_result(exc, "uid")
        rows = await info.context.graph.write(
            qf.SET_LABEL, {"uid": full, "label": label}, timeout=info.context.settings.query_timeout_s
        )
        if not rows:
            return FeatureNotFound(uid=full, message=str(qerrors.FeatureNotFound(full)))
        return Feature.from_row(rows[0]["f"])


def build_schema(settings: ApiSettings) -> strawberry.Schema:
    """The schema with its limits and error handling (atlas_api.limits), run as atlas_api.execution says."""
    from atlas_api.execution import AtlasSchema
    from atlas_api.limits import RequestPolicy

    mutation: Any = merge_types("Mutation", (LabelMutation, SteerMutation))
    query: Any = merge_types("Query", (Query, InteropQuery))
    return AtlasSchema(query=query, mutation=mutation, policy=RequestPolicy(settings))
