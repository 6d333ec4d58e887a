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

How it is split (circuit-tracer's seams): the graph types and their exports (``queries.flow_types``); the Cypher
statements (``queries.flow_cypher``), which fetch a superset of what the graph can contain (one statement per
direction, parameterised, read-only); :func:`assemble_flow_graph` (``queries.flow_assembly``), a pure function
of those rows that applies depth, cuts, k, modules and the node cap exactly. This module runs them:
:func:`build_flow_graph` on the sync :class:`queries.db.Graph`, :func:`build_flow_graph_async` on any async reader (the API's
:class:`queries.aio.AsyncGraph`), so both get the same graph.

Invariants: every edge points from the earlier module to the later one (as stored); every node of an edge
is in ``nodes``; seeds are always nodes; ``depth`` counts layers away from the seed's layer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, LiteralString

from queries.db import Graph
from queries.domain import Direction
from queries.errors import InvalidInput
from queries.flow_assembly import assemble_flow_graph
from queries.flow_cypher import DOWNSTREAM_STATEMENT, UPSTREAM_STATEMENT, plan_statements
from queries.flow_types import DEFAULT_MAX_NODES, MAX_TOP_K, UNBOUNDED_DEPTH, FlowEdge, FlowGraph, FlowNode, FlowOptions
from queries.ids import FeatureRef, parse_uid

# The builder's public names, importable from here as before the split (types, statements, assembly).
__all__ = [
    "DEFAULT_MAX_NODES",
    "DOWNSTREAM_STATEMENT",
    "MAX_TOP_K",
    "UNBOUNDED_DEPTH",
    "UPSTREAM_STATEMENT",
    "AsyncReader",
    "Direction",
    "FlowEdge",
    "FlowGraph",
    "FlowNode",
    "FlowOptions",
    "Reader",
    "Seeds",
    "assemble_flow_graph",
    "build_flow_graph",
    "build_flow_graph_async",
    "normalise_seeds",
    "plan_statements",
]

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
