"""A flow graph as data: its options (:class:`FlowOptions`), nodes, edges and the :class:`FlowGraph` with its exports
(the project's JSON, circuit-tracer's graph JSON for Neuronpedia's viewer). How one is built: queries.flow_graph.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from queries.domain import MATCHERS, MODULE_CUT, RESIDUAL_CUT, Direction, Module
from queries.errors import InvalidInput
from queries.ids import FeatureRef, sae_key
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
    matcher: str = "cosine"  # follow only the edges this matcher found (queries.domain.MATCHERS)

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
        if self.matcher not in MATCHERS:
            raise InvalidInput(f"matcher {self.matcher!r} is not known (valid: {', '.join(MATCHERS)})")
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

    @property
    def agreement(self) -> int:
        """How many matchers found this pair (each matcher writes at most one edge per feature pair)."""
        return len(self.methods)

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
