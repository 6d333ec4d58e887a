"""Pure assembly of a flow graph from the rows of the builder's statements (queries.flow_cypher): depth, cuts, k,
modules and the node cap applied exactly (the method: queries.flow_graph). No database here: unit-testable on rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from queries.domain import Module
from queries.errors import FeatureNotFound
from queries.flow_types import _MODULE_ORDER, FlowEdge, FlowGraph, FlowNode, FlowOptions


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
            if key in seen:
                continue
            e = _Edge(
                src["uid"],
                tgt["uid"],
                float(row["similarity"]),
                row.get("target_rank"),
                row.get("source_rank"),
                tuple(sorted(row.get("methods") or ("cosine",))),
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


def _follow_residual_chain(
    b: _Builder,
    frontier: list[str],
    nodes: Mapping[str, FlowNode],
    incoming: Mapping[str, list[_Edge]],
    chain: Mapping[str, list[_Edge]],
    *,
    upstream: bool,
    bound: int,
    skip_modules_of: str | None = None,
) -> None:
    """Breadth-first along the residual chain from ``frontier``: ``chain`` gives each node's residual edges in the
    walk's direction (incoming upstream, outgoing downstream), ranked by the rank on the far side (target_rank
    upstream, source_rank downstream), kept within k, the residual cut and the layer ``bound`` (floor upstream,
    ceiling downstream). Every node reached gets its module predecessors attached (except ``skip_modules_of``)."""

    def rank(e: _Edge) -> int | None:
        # only cosine ranks each source's successors; the other matchers' edges carry the target's rank alone
        return e.target_rank if upstream or b.o.matcher != "cosine" else e.source_rank

    seen = set(frontier)
    while frontier:
        nxt: list[str] = []
        for cur in frontier:
            if cur != skip_modules_of:
                _attach_modules(b, cur, nodes, incoming)
            for e in sorted(chain.get(cur, ()), key=lambda e: (rank(e) or 0, -e.similarity)):
                far = nodes[e.source if upstream else e.target]
                beyond = far.layer < bound if upstream else far.layer > bound
                if far.module is not Module.RES or not _rank_ok(rank(e), b.o.top_k) or beyond:
                    continue
                if not b.keep_residual(e.similarity) or not b.add_node(far):
                    continue
                b.add_edge(e)
                if far.uid not in seen:
                    seen.add(far.uid)
                    nxt.append(far.uid)
        frontier = nxt


def _upstream(b: _Builder, seed: FlowNode, nodes: Mapping[str, FlowNode], incoming: Mapping[str, list[_Edge]]) -> None:
    if seed.module is not Module.RES:
        return  # module features are leaves: nothing flows into them
    floor = seed.layer - b.o.depth_or_max
    _follow_residual_chain(b, [seed.uid], nodes, incoming, incoming, upstream=True, bound=floor)


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
    _follow_residual_chain(
        b, frontier, nodes, incoming, outgoing, upstream=False, bound=ceiling, skip_modules_of=seed.uid
    )


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
