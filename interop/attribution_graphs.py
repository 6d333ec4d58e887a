"""Attribution graphs (circuit-tracer / Neuronpedia graph JSON) in the graph store: streaming import, export back.

Import (``atlas graphs import FILE.json``) never holds the file: ``metadata``, ``qParams`` and ``nodes``
(small) are read with ijson's C parser, then ``links`` (the bulk: millions) stream through it and are
written in batches of parallel lists. Every object is checked against the published schema on the way
(interop.graph_schema), so a bad file stops at its first offending path. The graph is staged: its
``AttributionGraph`` node stays ``complete = false`` (invisible to every reader) until the last
transaction publishes it; a failure deletes the staged rows, and a killed import leaves only an
invisible staged graph that the next import of the same graph, or ``atlas graphs gc``, removes.

How graph nodes map to atlas features. A node names a feature when its ``feature_type`` is a transcoder/SAE
feature (``cross layer transcoder``, ``transcoder``, ``sae``, ``feature``) and its ``node_id`` has
circuit-tracer's form ``{layer}_{index}_{ctx}``; ``index`` is the feature's index in that layer's SAE
(Neuronpedia's ``feature`` field holds the cantor pairing of layer and index, so the node id is the
reliable source). The SAE is found, in order:

1. ``--atlas A --module M``: the atlas's SAE ``A/{layer}-{M}``;
2. ``metadata.feature_details.neuronpedia_source_set = S``: the SAE whose Neuronpedia id is
   ``{metadata.scan}/{layer}-{S}`` (ingest keeps SAELens's registry id on each SAE; limited to ``--atlas``
   when given) — a Gemma Scope transcoder graph links to an atlas built from the same transcoders;
3. a flow-graph export of this project (``scan`` is an atlas, ``prompt_tokens`` = att/mlp/res): the
   module is the node's ``ctx_idx`` column.

A node whose layer has no such SAE, or whose index is beyond its width, stays unlinked (counted).
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from interop.graph_schema import check_link, check_metadata, check_node, check_qparams
from queries import attribution_graphs as Q
from queries import neuronpedia as qnp
from queries.db import Graph
from queries.errors import AtlasNotFound, GraphNotFound, GraphSchemaError, InvalidInput
from queries.ids import feature_uid

log = logging.getLogger(__name__)

FEATURE_TYPES = frozenset({"cross layer transcoder", "transcoder", "sae", "feature"})
_NODE_ID_RE = re.compile(r"^(?P<layer>\d+)_(?P<index>\d+)_(?P<ctx>\d+)$")
_FLOW_COLUMNS = ["att", "mlp", "res"]  # queries.flow_graph's circuit-tracer export: ctx_idx = module column
NODE_BATCH = 5_000
LINK_BATCH = 50_000


@dataclass
class GraphImportReport:
    id: str
    key: str
    n_nodes: int = 0
    n_links: int = 0
    n_feature_nodes: int = 0
    n_linked: int = 0
    mapping: str = "none"
    replaced: int = 0
    seconds: float = 0.0
    link_seconds: float = 0.0
    unmapped_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def links_per_s(self) -> float:
        return self.n_links / self.link_seconds if self.link_seconds > 0 else 0.0

    def summary(self) -> str:
        return (
            f"imported {self.id}: {self.n_nodes} nodes, {self.n_links} links in {self.seconds:.1f}s "
            f"({self.links_per_s:,.0f} links/s); {self.n_linked} of {self.n_feature_nodes} feature nodes linked to atlas features ({self.mapping})"
        )


def ensure_graph_schema(graph: Graph) -> None:
    for statement in Q.SCHEMA_STATEMENTS:
        graph.write(statement)


# -- reading the file --------------------------------------------------------------------------------
def _open(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except OSError as exc:
        raise InvalidInput(
            f"graph file {str(path)!r} cannot be read ({exc.strerror}); give the path of a graph JSON"
        ) from None


def _first(path: Path, prefix: str) -> Any:
    """The value at ``prefix`` (parsing stops once it is built), or a schema error naming it."""
    import ijson

    with _open(path) as fh:
        try:
            for value in ijson.items(fh, prefix, use_float=True):
                return value
        except ijson.JSONError as exc:
            raise GraphSchemaError(f"(file): {path} is not valid JSON ({str(exc)[:120]})") from None
    raise GraphSchemaError(f"{prefix}: required field is missing")


def _has_links_array(path: Path) -> None:
    import ijson

    with _open(path) as fh:
        try:
            for prefix, event, _ in ijson.parse(fh):
                if prefix == "links" and event in ("start_array", "start_map", "string", "number", "boolean", "null"):
                    if event != "start_array":
                        raise GraphSchemaError(f"links: expected array, got {event.replace('start_map', 'object')}")
                    return
        except ijson.JSONError as exc:
            raise GraphSchemaError(f"(file): {path} is not valid JSON ({str(exc)[:120]})") from None
    raise GraphSchemaError("links: required field is missing")


def _links(path: Path) -> Iterator[Any]:
    import ijson

    with _open(path) as fh:
        try:
            yield from ijson.items(fh, "links.item", use_float=True)
        except ijson.JSONError as exc:
            raise GraphSchemaError(
                f"links: the file is not valid JSON inside the links array ({str(exc)[:120]})"
            ) from None


# -- id mapping --------------------------------------------------------------------------------------
Mapper = Callable[[dict[str, Any]], "str | None"]


def feature_mapper(
    graph: Graph, metadata: dict[str, Any], *, atlas: str | None, module: str | None, report: GraphImportReport
) -> Mapper:
    """The function from a graph node to the uid of the atlas feature it names (module doc), or None."""
    saes = graph.read(qnp.SAE_SOURCES, {"atlases": [atlas] if atlas else None})
    if atlas and not saes:
        raise AtlasNotFound(atlas)
    by_layer: dict[int, dict[str, Any]] = {}
    by_module: dict[tuple[int, str], dict[str, Any]] = {}
    source_set = (metadata.get("feature_details") or {}).get("neuronpedia_source_set")
    scan = metadata.get("scan")
    if module:
        if not atlas:
            raise InvalidInput("--module needs --atlas (the atlas whose SAEs the graph's features come from)")
        by_layer = {s["layer"]: s for s in saes if s["module"] == module}
        report.mapping = f"atlas {atlas}, module {module}"
    elif source_set:
        for s in saes:
            src = qnp.parse_neuronpedia_id(s["neuronpedia_id"]) if s["neuronpedia_id"] else None
            if src is not None and src.model == scan and src.set == source_set and src.layer == s["layer"]:
                by_layer[s["layer"]] = s
        report.mapping = f"Neuronpedia source set {scan}/{source_set}"
    elif metadata.get("prompt_tokens") == _FLOW_COLUMNS and any(s["atlas"] == scan for s in saes):
        by_module = {(s["layer"], s["module"]): s for s in saes if s["atlas"] == scan}
        report.mapping = f"flow-graph export of atlas {scan}"
    else:
        report.mapping = "none (no Neuronpedia source set, give --atlas and --module)"

    def reason(why: str) -> None:
        report.unmapped_reasons[why] = report.unmapped_reasons.get(why, 0) + 1

    def map_node(node: dict[str, Any]) -> str | None:
        if node.get("feature_type") not in FEATURE_TYPES:
            return None
        report.n_feature_nodes += 1
        m = _NODE_ID_RE.match(str(node["node_id"]))
        if not m:
            reason("node_id not {layer}_{index}_{ctx}")
            return None
        layer, index, ctx = int(m["layer"]), int(m["index"]), int(m["ctx"])
        sae = by_module.get((layer, _FLOW_COLUMNS[ctx])) if by_module and ctx < 3 else by_layer.get(layer)
        if sae is None:
            reason("no SAE for the layer")
            return None
        if index >= int(sae["d_sae"] or 0):
            reason("index beyond the SAE's width")
            return None
        return feature_uid(sae["atlas"], layer, sae["module"], index)

    return map_node


# -- import ------------------------------------------------------------------------------------------
def delete_graph_rows(graph: Graph, key: str) -> None:
    """Delete a graph's nodes and links (batched), then its AttributionGraph node."""
    from queries.ingest_writes import delete_in_batches

    delete_in_batches(graph, Q.DELETE_GRAPH_LINKS_BATCH, {"key": key}, limit=50_000)
    delete_in_batches(graph, Q.DELETE_GRAPH_NODES_BATCH, {"key": key}, limit=5_000)
    graph.write(Q.DELETE_GRAPH_NODE, {"key": key})


def import_graph(
    graph: Graph,
    path: str | Path,
    *,
    graph_id: str | None = None,
    atlas: str | None = None,
    module: str | None = None,
    replace: bool = False,
    link_batch: int = LINK_BATCH,
) -> GraphImportReport:
    """Stream one graph JSON into Neo4j (module doc); returns counts and timings."""
    t0 = time.perf_counter()
    p = Path(path)
    if not p.is_file():
        raise InvalidInput(
            f"graph file {str(p)!r} does not exist (give the path of a circuit-tracer / Neuronpedia graph JSON)"
        )
    metadata = _first(p, "metadata")
    check_metadata(metadata)
    qparams = _first(p, "qParams")
    check_qparams(qparams)
    nodes = _first(p, "nodes")
    if not isinstance(nodes, list):
        raise GraphSchemaError(f"nodes: expected array, got {type(nodes).__name__}")
    _has_links_array(p)
    gid = graph_id or f"{metadata['scan']}/{metadata['slug']}"
    ensure_graph_schema(graph)
    existing = graph.read(Q.GRAPH_BY_ID, {"id": gid})
    if existing and not replace:
        raise InvalidInput(
            f"attribution graph {gid!r} is already stored (pass --replace to overwrite it, or --id to store it under another id)"
        )

    report = GraphImportReport(id=gid, key=uuid.uuid4().hex)
    mapper = feature_mapper(graph, metadata, atlas=atlas, module=module, report=report)
    index: dict[str, int] = {}
    cols: dict[str, list[Any]] = {
        k: [] for k in ("i", "node_id", "feature", "layer", "ctx_idx", "feature_type", "uid", "raw")
    }
    for i, node in enumerate(nodes):
        check_node(node, i)
        nid = node["node_id"]
        if nid in index:
            raise GraphSchemaError(f"nodes[{i}].node_id: {nid!r} repeats nodes[{index[nid]}] (node ids must be unique)")
        index[nid] = i
        for k, v in (
            ("i", i),
            ("node_id", nid),
            ("feature", None if node["feature"] is None else int(node["feature"])),
            ("layer", str(node["layer"])),
            ("ctx_idx", int(node["ctx_idx"])),
            ("feature_type", node["feature_type"]),
            ("uid", mapper(node)),
            ("raw", json.dumps(node, ensure_ascii=False)),
        ):
            cols[k].append(v)
    del nodes

    # Interrupted earlier tries of this graph: invisible, delete them now.
    for row in graph.read(Q.STAGED_GRAPHS_OF_ID, {"id": gid}):
        delete_graph_rows(graph, row["key"])
    graph.write(
        Q.CREATE_STAGED_GRAPH,
        {
            "key": report.key,
            "id": gid,
            "slug": metadata["slug"],
            "scan": metadata["scan"],
            "prompt": metadata["prompt"],
            "prompt_tokens": list(metadata["prompt_tokens"]),
            "source_set": (metadata.get("feature_details") or {}).get("neuronpedia_source_set"),
            "metadata_json": json.dumps(metadata, ensure_ascii=False),
            "qparams_json": json.dumps(qparams, ensure_ascii=False),
        },
    )
    try:
        n = len(cols["i"])
        for a in range(0, n, NODE_BATCH):
            graph.write(
                Q.CREATE_GRAPH_NODES,
                {"key": report.key, **{k: v[a : a + NODE_BATCH] for k, v in cols.items()}},
                timeout=300,
            )
        report.n_nodes = n
        t_links = time.perf_counter()
        src: list[int] = []
        dst: list[int] = []
        weight: list[float] = []
        k0 = 0
        for i, link in enumerate(_links(p)):
            # Fast path for the common well-formed link (millions of them); anything else gets the full check.
            w = link.get("weight") if type(link) is dict else None
            if (
                not (type(w) is float or type(w) is int)
                or type(link.get("source")) is not str
                or type(link.get("target")) is not str
            ):
                check_link(link, i)
            s, t = index.get(link["source"]), index.get(link["target"])
            if s is None or t is None:
                end = "source" if s is None else "target"
                raise GraphSchemaError(f"links[{i}].{end}: {link[end]!r} is not the node_id of any node")
            src.append(s)
            dst.append(t)
            weight.append(float(link["weight"]))
            if len(src) >= link_batch:
                graph.write(
                    Q.CREATE_GRAPH_LINKS,
                    {"key": report.key, "src": src, "dst": dst, "weight": weight, "k0": k0},
                    timeout=600,
                )
                k0 += len(src)
                src, dst, weight = [], [], []
        if src:
            graph.write(
                Q.CREATE_GRAPH_LINKS,
                {"key": report.key, "src": src, "dst": dst, "weight": weight, "k0": k0},
                timeout=600,
            )
            k0 += len(src)
        report.n_links = k0
        report.link_seconds = time.perf_counter() - t_links
        linked = graph.write(Q.LINK_GRAPH_FEATURES, {"key": report.key}, timeout=300)
        report.n_linked = int(linked[0]["n"]) if linked else 0
        res = graph.write(
            Q.PUBLISH_GRAPH,
            {
                "key": report.key,
                "id": gid,
                "n_nodes": report.n_nodes,
                "n_links": report.n_links,
                "n_linked": report.n_linked,
            },
        )
    except BaseException:
        try:
            delete_graph_rows(graph, report.key)
        except Exception:  # noqa: BLE001 - the staged graph stays invisible; `atlas graphs gc` removes it
            log.warning("could not delete the staged rows of %s (run `atlas graphs gc`)", gid)
        raise
    replaced = res[0]["replaced"] if res else []
    for key in replaced:
        delete_graph_rows(graph, key)
    report.replaced = len(replaced)
    report.seconds = time.perf_counter() - t0
    log.info("%s", report.summary())
    return report


def gc_graphs(graph: Graph) -> int:
    """Delete every graph that is not complete (interrupted or replaced imports); do not run during an import."""
    rows = graph.read(Q.STALE_GRAPHS)
    for r in rows:
        delete_graph_rows(graph, r["key"])
    return len(rows)


def drop_graph(graph: Graph, graph_id: str) -> None:
    rows = graph.write(Q.HIDE_GRAPH, {"id": graph_id})
    if not rows:
        raise GraphNotFound(graph_id)
    for r in rows:
        delete_graph_rows(graph, r["key"])


# -- export ------------------------------------------------------------------------------------------
def iter_graph_json(graph: Graph, graph_id: str, *, page_nodes: int = 64) -> Iterator[str]:
    """The stored graph as JSON text chunks: metadata, qParams, nodes in file order, links grouped by target.

    Links come back in file order within each target (circuit-tracer writes them grouped by target, so such
    files round-trip byte-for-byte in content); every object is validated before it is written.
    """
    rows = graph.read(Q.GRAPH_BY_ID, {"id": graph_id})
    if not rows:
        raise GraphNotFound(graph_id)
    g = rows[0]["g"]
    metadata, qparams = json.loads(g["metadata_json"]), json.loads(g["qparams_json"])
    check_metadata(metadata)
    check_qparams(qparams)
    yield (
        '{"metadata":'
        + json.dumps(metadata, ensure_ascii=False)
        + ',"qParams":'
        + json.dumps(qparams, ensure_ascii=False)
        + ',"nodes":['
    )
    n = int(g["n_nodes"] or 0)
    for a in range(0, n, 1000):
        chunk = graph.read(Q.GRAPH_NODES_PAGE, {"key": g["key"], "lo": a, "hi": a + 1000})
        for r in chunk:
            node = json.loads(r["raw"])
            check_node(node, r["i"])
            yield ("," if r["i"] else "") + json.dumps(node, ensure_ascii=False)
    yield '],"links":['
    first = True
    for a in range(0, n, page_nodes):
        for r in graph.read(Q.GRAPH_LINKS_PAGE, {"key": g["key"], "lo": a, "hi": a + page_nodes}, timeout=300):
            link = {"source": r["source"], "target": r["target"], "weight": r["weight"]}
            check_link(link, r["k"])
            yield ("" if first else ",") + json.dumps(link)
            first = False
    yield "]}"


def export_graph(graph: Graph, graph_id: str, path: str | Path) -> Path:
    """Write the stored graph to ``path`` (through a temporary file, so a failure leaves no partial file)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".graph-", suffix=".json", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for part in iter_graph_json(graph, graph_id):
                fh.write(part)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
