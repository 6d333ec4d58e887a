"""The paper's flow-graph builder (paper §3), the one implementation used by the API and steering.

A flow graph starts from seed features and follows ``FLOWS_TO`` edges:

- **upstream** (backward): through the residual chain ``res(L) ← res(L-1)`` using each feature's top-k
  residual predecessors (``target_rank < k``; the paper uses k = 1); at every residual node of the chain
  its ``att(L)``/``mlp(L)`` predecessors are attached as leaves when their similarity is at least the
  module cut (``module_min_similarity``, paper 0.15). The chain stops where the residual similarity falls
  below the residual cut ``min_similarity`` (paper t_R = 0.5; 0 disables the cut, as the paper's
  illustration graphs do). Module nodes are leaves: they are never traced further back.
- **downstream** (forward): through the top-k residual successors (``source_rank < k``) with the same
  residual cut; every residual node reached gets its module predecessors attached the same way. A module
  seed (``att``/``mlp``) first hops to the residual features of its own layer it feeds
  (``target_rank < k``, module cut).

How it is split: the Cypher statements fetch a superset of what the graph can contain (one statement per
direction, parameterised, read-only); :func:`assemble_flow_graph` is a pure function of those rows that
applies depth, cuts, k, modules and the node cap exactly. :func:`build_flow_graph` runs it on the sync
:class:`queries.db.Graph`, :func:`build_flow_graph_async` on any async reader (the API's
:class:`queries.aio.AsyncGraph`), so both get the same graph.

Invariants: every edge points from the earlier module to the later one (as stored); every node of an edge
is in ``nodes``; seeds are always nodes; ``depth`` counts layers away from the seed's layer.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, LiteralString

from queries.db import Graph
from queries.domain import MODULE_CUT, RESIDUAL_CUT, Direction, Module
from queries.errors import FeatureNotFound, InvalidInput
from queries.ids import FeatureRef, parse_uid, sae_key
from queries.neuronpedia import NeuronpediaSource, cantor, parse_neuronpedia_id

MAX_TOP_K = 8
# "whole atlas" depth: larger than any model's layer count.
UNBOUNDED_DEPTH = 1_000
DEFAULT_MAX_NODES = 5_000


@dataclass(frozen=True)
class FlowOptions:
    """Parameters of the builder; defaults are the paper's steering graphs (t_R 0.5, t_mod 0.15, top-1)."""

    direction: Direction = Direction.UPSTREAM
    depth: int | None = None
    min_similarity: float = RESIDUAL_CUT
    module_min_similarity: float = MODULE_CUT
    top_k: int = 1
    modules: frozenset[Module] = frozenset({Module.ATT, Module.MLP})
    max_nodes: int = DEFAULT_MAX_NODES

    def validated(self) -> FlowOptions:
        """Return self after checking every value; raises InvalidInput naming the value and the valid range."""
        if self.depth is not None and not (0 <= self.depth <= UNBOUNDED_DEPTH):
            raise InvalidInput(
                f"depth {self.depth} is out of range (valid: 0–{UNBOUNDED_DEPTH}, or null for the whole atlas)"
            )
        for name, value in (
            ("minSimilarity", self.min_similarity),
            ("moduleMinSimilarity", self.module_min_similarity),
        ):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and -1.0 <= value <= 1.0):
                raise InvalidInput(
                    f"{name} {value} is out of range (valid: -1.0–1.0, cosine similarity; 0 disables the cut)"
                )
        if not (1 <= self.top_k <= MAX_TOP_K):
            raise InvalidInput(f"topK {self.top_k} is out of range (valid: 1–{MAX_TOP_K}; the paper uses 1)")
        if self.max_nodes < 1:
            raise InvalidInput(f"maxNodes {self.max_nodes} must be at least 1")
        mods = frozenset(Module.parse(m) if isinstance(m, str) else m for m in self.modules)
        return replace(self, modules=mods, direction=Direction(self.direction))

    @property
    def depth_or_max(self) -> int:
        return UNBOUNDED_DEPTH if self.depth is None else self.depth


@dataclass(frozen=True)
class FlowNode:
    uid: str
    atlas: str
    layer: int
    module: Module
    index: int
    category: str | None = None
    s_res: float | None = None
    s_att: float | None = None
    s_mlp: float | None = None
    label: str | None = None

    @property
    def ref(self) -> FeatureRef:
        """The node's typed identity (built from its fields: no uid parsing)."""
        return FeatureRef(self.atlas, self.layer, self.module, self.index)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> FlowNode:
        return cls(
            uid=row["uid"],
            atlas=row["atlas"],
            layer=int(row["layer"]),
            module=Module.parse(row["module"]),
            index=int(row["index"]),
            category=row.get("category"),
            s_res=row.get("s_res"),
            s_att=row.get("s_att"),
            s_mlp=row.get("s_mlp"),
            label=row.get("label"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "atlas": self.atlas,
            "layer": self.layer,
            "module": self.module.value,
            "index": self.index,
            "category": self.category,
            "s_res": self.s_res,
            "s_att": self.s_att,
            "s_mlp": self.s_mlp,
            "label": self.label,
        }


@dataclass(frozen=True)
class FlowEdge:
    source: str
    target: str
    similarity: float
    # The matchers that found this link (a FLOWS_TO relationship's ``method``; ``cosine`` where none is stored).
    methods: tuple[str, ...] = ("cosine",)

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "similarity": self.similarity}


_MODULE_ORDER = {Module.ATT: 0, Module.MLP: 1, Module.RES: 2}


@dataclass
class FlowGraph:
    """A flow graph: nodes sorted by (layer, module, index), edges by (source, target)."""

    seeds: list[str]
    nodes: list[FlowNode]
    edges: list[FlowEdge]
    truncated: bool = False
    options: FlowOptions = field(default_factory=FlowOptions)

    @property
    def uids(self) -> set[str]:
        return {n.uid for n in self.nodes}

    def node(self, uid: str) -> FlowNode:
        for n in self.nodes:
            if n.uid == uid:
                return n
        raise KeyError(uid)

    @property
    def l_start(self) -> int | None:
        """First layer of the residual span (the paper's l_start)."""
        layers = [n.layer for n in self.nodes if n.module is Module.RES]
        return min(layers) if layers else None

    @property
    def l_end(self) -> int | None:
        layers = [n.layer for n in self.nodes if n.module is Module.RES]
        return max(layers) if layers else None

    def by_layer(self) -> dict[int, list[FlowNode]]:
        out: dict[int, list[FlowNode]] = {}
        for n in self.nodes:
            out.setdefault(n.layer, []).append(n)
        return out

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: seeds, nodes, edges, span and the options used."""
        o = self.options
        return {
            "format": "feature-atlas/flow-graph@1",
            "seeds": list(self.seeds),
            "options": {
                "direction": o.direction.value,
                "depth": o.depth,
                "min_similarity": o.min_similarity,
                "module_min_similarity": o.module_min_similarity,
                "top_k": o.top_k,
                "modules": sorted(m.value for m in o.modules),
            },
            "l_start": self.l_start,
            "l_end": self.l_end,
            "truncated": self.truncated,
            "nodes": [n.to_json() for n in self.nodes],
            "edges": [e.to_json() for e in self.edges],
        }

    def to_circuit_tracer(
        self, slug: str | None = None, neuronpedia: Mapping[str, str | None] | None = None
    ) -> dict[str, Any]:
        """circuit-tracer's graph JSON (metadata, qParams, nodes, links) so its graph viewer opens the graph.

        The viewer lays nodes out by layer (rows) and context position (columns); a flow graph has no
        tokens, so the three modules play the columns: ``ctx_idx`` 0 = att, 1 = mlp, 2 = res, and
        ``prompt_tokens`` names them. Node ids follow the viewer's ``{layer}_{feature}_{ctx}`` form.

        ``neuronpedia`` maps SAE keys (``atlas/12-res``) to Neuronpedia ids. When every node's SAE has one
        and they share a model, ``metadata.scan`` is that Neuronpedia model id (else the atlas name); when
        they also share one source set, ``feature_details.neuronpedia_source_set`` names it and each
        node's ``feature`` is Neuronpedia's cantor pairing of (layer, index), as its graphs use.
        """
        sources = _neuronpedia_sources(self.nodes, neuronpedia or {})
        models = {s.model for s in sources.values()} if len(sources) == len(self.nodes) else set()
        sets = {s.set for s in sources.values()} if len(models) == 1 else set()

        def node_id(n: FlowNode) -> str:
            return f"{n.layer}_{n.index}_{_MODULE_ORDER[n.module]}"

        ids = {n.uid: node_id(n) for n in self.nodes}
        nodes = []
        for n in self.nodes:
            ctx = _MODULE_ORDER[n.module]
            nodes.append(
                {
                    "node_id": ids[n.uid],
                    "jsNodeId": f"{n.layer}_{n.index}-{ctx}",
                    # The viewer keys feature detail look-ups on an integer: Neuronpedia's cantor pairing when its
                    # source set is named, else one that keeps layer, module and index apart.
                    "feature": cantor(n.layer, n.index)
                    if len(sets) == 1
                    else (n.layer * 3 + ctx) * 10_000_000 + n.index,
                    "layer": str(n.layer),
                    "ctx_idx": ctx,
                    "feature_type": "cross layer transcoder",
                    "token_prob": 0.0,
                    "is_target_logit": False,
                    "run_idx": 0,
                    "reverse_ctx_idx": 0,
                    "clerp": n.label
                    or f"{n.layer}/{n.module.value}/{n.index}" + (f" ({n.category})" if n.category else ""),
                    "influence": None,
                    "activation": None,
                }
            )
        seeds = [s for s in self.seeds if s in ids]
        metadata: dict[str, Any] = {
            "slug": slug or (seeds[0].replace("/", "_") if seeds else "flow-graph"),
            "scan": next(iter(models))
            if len(models) == 1
            else (self.nodes[0].atlas if self.nodes else "feature-atlas"),
            "transcoder_list": [],
            "prompt_tokens": ["att", "mlp", "res"],
            "prompt": "flow graph of " + ", ".join(seeds),
            "node_threshold": self.options.module_min_similarity,
            "schema_version": 1,
        }
        if len(sets) == 1:
            metadata["feature_details"] = {"neuronpedia_source_set": next(iter(sets))}
        return {
            "metadata": metadata,
            "qParams": {
                "pinnedIds": [ids[s] for s in seeds],
                "supernodes": [],
                "linkType": "both",
                "clickedId": ids[seeds[0]] if seeds else "",
                "sg_pos": "",
            },
            "nodes": nodes,
            "links": [{"source": ids[e.source], "target": ids[e.target], "weight": e.similarity} for e in self.edges],
        }

    def sae_keys(self) -> list[str]:
        """The SAE keys (``atlas/12-res``) of the graph's nodes, sorted."""
        return sorted({sae_key(n.atlas, n.layer, n.module) for n in self.nodes})

    def dumps(self, fmt: str = "json") -> str:
        if fmt == "json":
            return json.dumps(self.to_json(), indent=1)
        if fmt in ("circuit-tracer", "circuit_tracer"):
            return json.dumps(self.to_circuit_tracer())
        raise InvalidInput(f"unknown export format {fmt!r} (valid: json, circuit-tracer)")


def _neuronpedia_sources(nodes: Sequence[FlowNode], ids: Mapping[str, str | None]) -> dict[str, NeuronpediaSource]:
    out: dict[str, NeuronpediaSource] = {}
    for n in nodes:
        np_id = ids.get(sae_key(n.atlas, n.layer, n.module))
        if np_id:
            out[n.uid] = parse_neuronpedia_id(np_id)
    return out


# -- Cypher ------------------------------------------------------------------------------------------
# Both statements return edge rows: {seed, source, target, similarity, target_rank, source_rank} where
# source/target are node maps (source may be null for a seed with no edges). They fetch a superset of
# the final graph (the cuts that cannot be expressed per path are applied in assemble_flow_graph).

_NODE_MAP: LiteralString = "{.uid, .atlas, .layer, .module, .index, .category, .s_res, .s_att, .s_mlp, .label}"

UPSTREAM_STATEMENT: LiteralString = (
    "UNWIND $uids AS uid "
    "MATCH (seed:Feature {uid: uid}) "
    # The residual chain: predicates inline into a pruning var-length expand (bounded by layers).
    "OPTIONAL MATCH p = (seed)<-[:FLOWS_TO*1..]-(x:Feature) "
    "WHERE seed.module = 'res' "
    "AND all(r IN relationships(p) WHERE r.target_rank < $k AND r.similarity >= $min_sim) "
    # The layer bound sits in the node predicate so the expansion itself stops at the depth.
    "AND all(n IN nodes(p) WHERE n.module = 'res' AND n.layer >= seed.layer - $depth) "
    "WITH seed, collect(DISTINCT x) AS chain "
    "UNWIND [seed] + chain AS t "
    "OPTIONAL MATCH (s:Feature)-[r:FLOWS_TO]->(t) WHERE t.module = 'res' AND r.target_rank < $k "
    "RETURN seed.uid AS seed, s " + _NODE_MAP + " AS source, t " + _NODE_MAP + " AS target, "
    "r.similarity AS similarity, r.target_rank AS target_rank, r.source_rank AS source_rank, "
    "CASE WHEN r IS NULL THEN null ELSE coalesce(r.method, 'cosine') END AS method"
)

DOWNSTREAM_STATEMENT: LiteralString = (
    "UNWIND $uids AS uid "
    "MATCH (seed:Feature {uid: uid}) "
    # A module seed feeds residual features of its own layer; a residual seed starts the chain itself.
    "OPTIONAL MATCH (seed)-[r0:FLOWS_TO]->(first:Feature) "
    "WHERE seed.module <> 'res' AND r0.target_rank < $k AND r0.similarity >= $mod_sim "
    "WITH seed, CASE WHEN seed.module = 'res' THEN [seed] ELSE collect(first) END AS starts "
    "UNWIND CASE WHEN size(starts) = 0 THEN [null] ELSE starts END AS st "
    "OPTIONAL MATCH p = (st)-[:FLOWS_TO*1..]->(x:Feature) "
    "WHERE all(r IN relationships(p) WHERE r.source_rank < $k AND r.similarity >= $min_sim) "
    "AND all(n IN nodes(p) WHERE n.layer <= seed.layer + $depth) "
    "WITH seed, starts, collect(DISTINCT x) AS down "
    "UNWIND [seed] + starts + down AS t "
    "WITH DISTINCT seed, t "
    "CALL (t) { "
    "  MATCH (t)-[r:FLOWS_TO]->(n:Feature) "
    "  WHERE (t.module = 'res' AND r.source_rank < $k) OR (t.module <> 'res' AND r.target_rank < $k) "
    "  RETURN t AS s, n AS tt, r "
    "  UNION "
    "  MATCH (s:Feature)-[r:FLOWS_TO]->(t) WHERE t.module = 'res' AND s.module <> 'res' AND r.target_rank < $k "
    "  RETURN s, t AS tt, r "
    "  UNION "
    "  RETURN null AS s, t AS tt, null AS r "
    "} "
    "RETURN seed.uid AS seed, s " + _NODE_MAP + " AS source, tt " + _NODE_MAP + " AS target, "
    "r.similarity AS similarity, r.target_rank AS target_rank, r.source_rank AS source_rank, "
    "CASE WHEN r IS NULL THEN null ELSE coalesce(r.method, 'cosine') END AS method"
)


Reader = Callable[[LiteralString, Mapping[str, Any]], list[dict[str, Any]]]
AsyncReader = Callable[[LiteralString, Mapping[str, Any]], Awaitable[list[dict[str, Any]]]]


# Seed features as given: uid strings (parsed here) or FeatureRefs a caller parsed at its boundary.
Seeds = str | FeatureRef | Iterable[str | FeatureRef]


def normalise_seeds(seeds: Seeds, atlas: str | None = None) -> list[str]:
    """Seed ids (full uids, ``12/res/77`` with ``atlas``, or already parsed FeatureRefs) as unique full uids, order kept."""
    items = [seeds] if isinstance(seeds, (str, FeatureRef)) else list(seeds)
    if not items:
        raise InvalidInput("no seed features given (give at least one uid such as 'smollm2-demo/12-res/77')")
    out: list[str] = []
    for s in items:
        uid = s.uid if isinstance(s, FeatureRef) else parse_uid(s, atlas).uid  # parsed once, at the boundary
        if uid not in out:
            out.append(uid)
    return out


def plan_statements(uids: Sequence[str], options: FlowOptions) -> list[tuple[str, LiteralString, dict[str, Any]]]:
    """The statements (key, Cypher, parameters) whose rows :func:`assemble_flow_graph` needs."""
    params = {
        "uids": list(uids),
        "k": options.top_k,
        "depth": options.depth_or_max,
        "min_sim": options.min_similarity,
        "mod_sim": options.module_min_similarity,
    }
    plan: list[tuple[str, LiteralString, dict[str, Any]]] = []
    if options.direction in (Direction.UPSTREAM, Direction.BOTH):
        plan.append(("upstream", UPSTREAM_STATEMENT, params))
    if options.direction in (Direction.DOWNSTREAM, Direction.BOTH):
        plan.append(("downstream", DOWNSTREAM_STATEMENT, params))
    return plan


@dataclass
class _Edge:
    source: str
    target: str
    similarity: float
    target_rank: int | None
    source_rank: int | None
    methods: tuple[str, ...] = ("cosine",)


class _Builder:
    def __init__(self, options: FlowOptions) -> None:
        self.o = options
        self.nodes: dict[str, FlowNode] = {}
        self.edges: dict[tuple[str, str], FlowEdge] = {}
        self.truncated = False

    def add_node(self, node: FlowNode) -> bool:
        if node.uid in self.nodes:
            return True
        if len(self.nodes) >= self.o.max_nodes:
            self.truncated = True
            return False
        self.nodes[node.uid] = node
        return True

    def add_edge(self, e: _Edge) -> None:
        self.edges[(e.source, e.target)] = FlowEdge(e.source, e.target, float(e.similarity), e.methods)

    def keep_residual(self, sim: float) -> bool:
        return sim >= self.o.min_similarity

    def keep_module(self, node: FlowNode, sim: float) -> bool:
        return node.module in self.o.modules and sim >= self.o.module_min_similarity


def _index_rows(
    rows: Iterable[Mapping[str, Any]],
) -> tuple[dict[str, FlowNode], set[str], dict[str, list[_Edge]], dict[str, list[_Edge]]]:
    nodes: dict[str, FlowNode] = {}
    seeds: set[str] = set()
    incoming: dict[str, list[_Edge]] = {}
    outgoing: dict[str, list[_Edge]] = {}
    seen: dict[tuple[str, str], _Edge] = {}
    for row in rows:
        seeds.add(row["seed"])
        tgt, src = row.get("target"), row.get("source")
        if tgt:
            nodes.setdefault(tgt["uid"], FlowNode.from_row(tgt))
        if src:
            nodes.setdefault(src["uid"], FlowNode.from_row(src))
        if tgt and src and row.get("similarity") is not None:
            key = (src["uid"], tgt["uid"])
            method = row.get("method") or "cosine"
            if key in seen:  # the same link found by another matcher (one relationship per matcher)
                if method not in seen[key].methods:
                    seen[key].methods = (*seen[key].methods, method)
                continue
            e = _Edge(
                src["uid"],
                tgt["uid"],
                float(row["similarity"]),
                row.get("target_rank"),
                row.get("source_rank"),
                (method,),
            )
            seen[key] = e
            incoming.setdefault(e.target, []).append(e)
            outgoing.setdefault(e.source, []).append(e)
    return nodes, seeds, incoming, outgoing


def _rank_ok(rank: int | None, k: int) -> bool:
    return rank is not None and rank < k


def _attach_modules(
    b: _Builder, res_uid: str, nodes: Mapping[str, FlowNode], incoming: Mapping[str, list[_Edge]]
) -> None:
    for e in incoming.get(res_uid, ()):
        src = nodes[e.source]
        if src.module is Module.RES or not _rank_ok(e.target_rank, b.o.top_k):
            continue
        if b.keep_module(src, e.similarity) and b.add_node(src):
            b.add_edge(e)


def _upstream(b: _Builder, seed: FlowNode, nodes: Mapping[str, FlowNode], incoming: Mapping[str, list[_Edge]]) -> None:
    if seed.module is not Module.RES:
        return  # module features are leaves: nothing flows into them
    floor = seed.layer - b.o.depth_or_max
    frontier, seen = [seed.uid], {seed.uid}
    while frontier:
        nxt: list[str] = []
        for cur in frontier:
            _attach_modules(b, cur, nodes, incoming)
            for e in sorted(incoming.get(cur, ()), key=lambda e: (e.target_rank or 0, -e.similarity)):
                src = nodes[e.source]
                if src.module is not Module.RES or not _rank_ok(e.target_rank, b.o.top_k) or src.layer < floor:
                    continue
                if not b.keep_residual(e.similarity) or not b.add_node(src):
                    continue
                b.add_edge(e)
                if src.uid not in seen:
                    seen.add(src.uid)
                    nxt.append(src.uid)
        frontier = nxt


def _downstream(
    b: _Builder,
    seed: FlowNode,
    nodes: Mapping[str, FlowNode],
    incoming: Mapping[str, list[_Edge]],
    outgoing: Mapping[str, list[_Edge]],
) -> None:
    ceiling = seed.layer + b.o.depth_or_max
    if seed.module is Module.RES:
        frontier = [seed.uid]
    else:
        frontier = []
        for e in outgoing.get(seed.uid, ()):
            tgt = nodes[e.target]
            if (
                tgt.module is Module.RES
                and _rank_ok(e.target_rank, b.o.top_k)
                and e.similarity >= b.o.module_min_similarity
                and b.add_node(tgt)
            ):
                b.add_edge(e)
                frontier.append(tgt.uid)
    seen = set(frontier)
    while frontier:
        nxt: list[str] = []
        for cur in frontier:
            if cur != seed.uid:
                _attach_modules(b, cur, nodes, incoming)
            for e in sorted(outgoing.get(cur, ()), key=lambda e: (e.source_rank or 0, -e.similarity)):
                tgt = nodes[e.target]
                if tgt.module is not Module.RES or not _rank_ok(e.source_rank, b.o.top_k) or tgt.layer > ceiling:
                    continue
                if not b.keep_residual(e.similarity) or not b.add_node(tgt):
                    continue
                b.add_edge(e)
                if tgt.uid not in seen:
                    seen.add(tgt.uid)
                    nxt.append(tgt.uid)
        frontier = nxt


def assemble_flow_graph(
    uids: Sequence[str], options: FlowOptions, results: Mapping[str, Sequence[Mapping[str, Any]]]
) -> FlowGraph:
    """Pure assembly of a flow graph from the rows of :func:`plan_statements` (keyed like the plan).

    Raises FeatureNotFound for the first seed that no statement returned.
    """
    o = options
    b = _Builder(o)
    indexed = {key: _index_rows(rows) for key, rows in results.items()}
    found: set[str] = set()
    all_nodes: dict[str, FlowNode] = {}
    for nodes, seeds, _, _ in indexed.values():
        found |= seeds
        all_nodes.update(nodes)
    for uid in uids:
        if uid not in found:
            raise FeatureNotFound(uid)
    for uid in uids:  # seeds first so the node cap never drops one
        b.add_node(all_nodes[uid])
    for uid in uids:
        seed = all_nodes[uid]
        if "upstream" in indexed:
            nodes, _, incoming, _ = indexed["upstream"]
            _upstream(b, seed, nodes, incoming)
        if "downstream" in indexed:
            nodes, _, incoming, outgoing = indexed["downstream"]
            _downstream(b, seed, nodes, incoming, outgoing)
    ordered = sorted(b.nodes.values(), key=lambda n: (n.layer, _MODULE_ORDER[n.module], n.index, n.atlas))
    edges = sorted(b.edges.values(), key=lambda e: (e.source, e.target))
    return FlowGraph(seeds=list(uids), nodes=ordered, edges=edges, truncated=b.truncated, options=o)


def _prepare(
    seeds: Seeds, options: FlowOptions | None, atlas: str | None, overrides: Mapping[str, Any]
) -> tuple[list[str], FlowOptions]:
    opts = replace(options or FlowOptions(), **overrides).validated()
    return normalise_seeds(seeds, atlas), opts


def build_flow_graph(
    graph: Graph | Reader,
    seeds: Seeds,
    options: FlowOptions | None = None,
    *,
    atlas: str | None = None,
    **overrides: Any,
) -> FlowGraph:
    """Build the flow graph of ``seeds`` with the sync client (e.g. steering, the CLI, tests).

    ``overrides`` are FlowOptions fields, e.g. ``direction=Direction.BOTH, min_similarity=0.5``.
    """
    uids, opts = _prepare(seeds, options, atlas, overrides)
    read: Reader = graph.read if isinstance(graph, Graph) else graph
    results = {key: read(stmt, params) for key, stmt, params in plan_statements(uids, opts)}
    return assemble_flow_graph(uids, opts, results)


async def build_flow_graph_async(
    read: AsyncReader, seeds: Seeds, options: FlowOptions | None = None, *, atlas: str | None = None, **overrides: Any
) -> FlowGraph:
    """Same as :func:`build_flow_graph` with an async reader (e.g. ``AsyncGraph.read``)."""
    uids, opts = _prepare(seeds, options, atlas, overrides)
    results = {key: await read(stmt, params) for key, stmt, params in plan_statements(uids, opts)}
    return assemble_flow_graph(uids, opts, results)
