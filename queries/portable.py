"""One atlas as a portable archive (``atlas export ATLAS PATH`` / ``atlas import PATH``).

The archive is a plain tar of JSON Lines, gzip-compressed per member, readable without this project:

- ``manifest.json``: ``{"format": "feature-atlas/archive@1", "atlas", "counts": {features, edges, saes},
  "edge_checksum"}``
- ``atlas.json``: the Atlas node's properties; ``saes.jsonl.gz``: one SAE node's properties a line;
- ``features.jsonl.gz``: one Feature node's properties a line (uid order);
- ``edges.jsonl.gz``: ``{"s": source uid, "t": target uid, "p": {similarity, target_rank, source_rank}}``.

Temporal values are written as ``{"$neo4j": "datetime", "iso": ...}`` and restored exactly. Ingest and
steering runs are history of one deployment, not part of the atlas, and are not exported.

``edge_checksum`` (SHA-256 over ``source uid, target uid, similarity`` in uid order) identifies an atlas's
edges; the import recomputes it from the database and refuses to mark the atlas complete on a mismatch.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, LiteralString

from queries.db import Graph
from queries.errors import AtlasNotFound, InvalidInput
from queries.schema import ensure_schema

FORMAT = "feature-atlas/archive@1"
_PAGE = 5_000

GET_ATLAS_NODE: LiteralString = "MATCH (a:Atlas {name: $atlas}) RETURN properties(a) AS p"
GET_SAES: LiteralString = "MATCH (:Atlas {name: $atlas})-[:HAS_SAE]->(s:SAE) RETURN properties(s) AS p ORDER BY s.key"
FEATURE_PAGE: LiteralString = """
MATCH (f:Feature) WHERE f.atlas = $atlas AND f.uid > $after
RETURN properties(f) AS p ORDER BY f.uid LIMIT $limit
"""
EDGES_FROM: LiteralString = """
UNWIND $uids AS u
MATCH (:Feature {uid: u})-[r:FLOWS_TO]->(t:Feature)
RETURN u AS s, t.uid AS t, properties(r) AS p
"""
ATLAS_EXISTS: LiteralString = "MATCH (a:Atlas {name: $atlas}) RETURN count(a) AS n"
CREATE_ATLAS: LiteralString = "CREATE (a:Atlas) SET a = $props, a.complete = false"
CREATE_SAES: LiteralString = """
MATCH (a:Atlas {name: $atlas})
UNWIND $rows AS row
CREATE (s:SAE) SET s = row
CREATE (a)-[:HAS_SAE]->(s)
"""
CREATE_FEATURES: LiteralString = "UNWIND $rows AS row CREATE (f:Feature) SET f = row"
CREATE_EDGES: LiteralString = """
UNWIND $rows AS row
MATCH (s:Feature {uid: row.s}), (t:Feature {uid: row.t})
CREATE (s)-[r:FLOWS_TO]->(t) SET r = row.p
"""
SET_ATLAS: LiteralString = "MATCH (a:Atlas {name: $atlas}) SET a = $props"


@dataclass(frozen=True)
class ArchiveSummary:
    atlas: str
    features: int
    edges: int
    saes: int
    edge_checksum: str


# -- values ------------------------------------------------------------------------------------
def _encode(v: Any) -> Any:
    from neo4j.time import Date, DateTime, Duration, Time

    if isinstance(v, (DateTime, Date, Time)):
        return {"$neo4j": type(v).__name__.lower(), "iso": v.iso_format()}
    if isinstance(v, Duration):
        return {"$neo4j": "duration", "iso": v.iso_format()}
    if isinstance(v, list):
        return [_encode(x) for x in v]
    return v


def _decode(v: Any) -> Any:
    if isinstance(v, dict) and "$neo4j" in v:
        from neo4j.time import Date, DateTime, Time

        kind, iso = v["$neo4j"], v["iso"]
        parsers: dict[str, Any] = {
            "datetime": DateTime.from_iso_format,
            "date": Date.from_iso_format,
            "time": Time.from_iso_format,
        }
        if kind not in parsers:
            raise InvalidInput(f"archive value of type {kind!r} is not supported (valid: datetime, date, time)")
        return parsers[kind](iso)
    if isinstance(v, list):
        return [_decode(x) for x in v]
    return v


def _props(p: dict[str, Any], decode: bool = False) -> dict[str, Any]:
    f = _decode if decode else _encode
    return {k: f(v) for k, v in p.items()}


# -- reading the graph ---------------------------------------------------------------------------
def iter_features(graph: Graph, atlas: str, page: int = _PAGE) -> Iterator[list[dict[str, Any]]]:
    after = ""
    while True:
        rows = graph.read(FEATURE_PAGE, {"atlas": atlas, "after": after, "limit": page})
        if not rows:
            return
        yield [r["p"] for r in rows]
        after = rows[-1]["p"]["uid"]


def iter_edges(graph: Graph, uids: list[str]) -> list[dict[str, Any]]:
    rows = graph.read(EDGES_FROM, {"uids": uids})
    rows.sort(key=lambda r: (r["s"], r["t"]))
    return rows


def _edge_line(h: Any, r: dict[str, Any]) -> None:
    h.update(f"{r['s']}\t{r['t']}\t{float(r['p'].get('similarity', 0.0))!r}\n".encode())


def edge_checksum(graph: Graph, atlas: str) -> tuple[int, int, str]:
    """(features, edges, SHA-256 of every ``source uid, target uid, similarity`` in uid order) of ``atlas``."""
    h, n_f, n_e = hashlib.sha256(), 0, 0
    for feats in iter_features(graph, atlas):
        n_f += len(feats)
        for r in iter_edges(graph, [f["uid"] for f in feats]):
            n_e += 1
            _edge_line(h, r)
    return n_f, n_e, h.hexdigest()


# -- export -------------------------------------------------------------------------------------
def export_atlas(graph: Graph, atlas: str, path: Path) -> ArchiveSummary:
    """Write ``atlas`` to the archive ``path`` (written next to it, then renamed: never half an archive)."""
    from queries.atlases import known_atlases

    rows = graph.read(GET_ATLAS_NODE, {"atlas": atlas})
    if not rows:
        raise AtlasNotFound(atlas, known_atlases(graph))
    path = Path(path)
    if path.is_dir():
        raise InvalidInput(f"{path} is a directory; give the archive's file name, e.g. {path / (atlas + '.atlas.tar')}")
    saes = [r["p"] for r in graph.read(GET_SAES, {"atlas": atlas})]
    h, n_f, n_e = hashlib.sha256(), 0, 0
    with tempfile.TemporaryDirectory(dir=path.parent if path.parent.exists() else None) as tmp:
        t = Path(tmp)
        with gzip.open(t / "features.jsonl.gz", "wt") as ff, gzip.open(t / "edges.jsonl.gz", "wt") as ef:
            for feats in iter_features(graph, atlas):
                n_f += len(feats)
                for f in feats:
                    ff.write(json.dumps(_props(f)) + "\n")
                for r in iter_edges(graph, [f["uid"] for f in feats]):
                    n_e += 1
                    _edge_line(h, r)
                    ef.write(json.dumps({"s": r["s"], "t": r["t"], "p": _props(r["p"])}) + "\n")
        with gzip.open(t / "saes.jsonl.gz", "wt") as sf:
            for s in saes:
                sf.write(json.dumps(_props(s)) + "\n")
        summary = ArchiveSummary(atlas=atlas, features=n_f, edges=n_e, saes=len(saes), edge_checksum=h.hexdigest())
        manifest = {
            "format": FORMAT,
            "atlas": atlas,
            "counts": {"features": n_f, "edges": n_e, "saes": len(saes)},
            "edge_checksum": summary.edge_checksum,
        }
        (t / "manifest.json").write_text(json.dumps(manifest, indent=1))
        (t / "atlas.json").write_text(json.dumps(_props(rows[0]["p"]), indent=1))
        partial = path.with_name(path.name + ".partial")
        with tarfile.open(partial, "w") as tar:
            for name in ("manifest.json", "atlas.json", "saes.jsonl.gz", "features.jsonl.gz", "edges.jsonl.gz"):
                tar.add(t / name, arcname=name)
        partial.replace(path)
    return summary


# -- import -------------------------------------------------------------------------------------
def _member(tar: tarfile.TarFile, name: str, path: Path) -> io.BufferedReader:
    try:
        f = tar.extractfile(name)
    except KeyError:
        f = None
    if f is None:
        raise InvalidInput(
            f"{path} is not a feature-atlas archive: member {name!r} is missing (make one with `atlas export ATLAS PATH`)"
        )
    return f  # type: ignore[return-value]


def _lines(tar: tarfile.TarFile, name: str, path: Path) -> Iterator[dict[str, Any]]:
    with gzip.open(_member(tar, name, path), "rt") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def _batches(it: Iterator[dict[str, Any]], n: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for x in it:
        batch.append(x)
        if len(batch) >= n:
            yield batch
            batch = []
    if batch:
        yield batch


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        with tarfile.open(path, "r") as tar:
            manifest = json.load(_member(tar, "manifest.json", path))
    except (tarfile.TarError, OSError, ValueError) as exc:
        raise InvalidInput(
            f"{path} is not a readable feature-atlas archive ({exc}); make one with `atlas export ATLAS PATH`"
        ) from None
    if manifest.get("format") != FORMAT:
        raise InvalidInput(f"{path} has format {manifest.get('format')!r}; this version reads {FORMAT!r}")
    return manifest


def import_atlas(graph: Graph, path: Path, *, replace: bool = False) -> ArchiveSummary:
    """Load an archive into ``graph``. The Atlas node is written first with ``complete = false`` and gets its
    own properties (``complete`` included) only once every count and the edge checksum match."""
    from queries.maintenance import drop_atlas

    path = Path(path)
    manifest = read_manifest(path)
    atlas = manifest["atlas"]
    if graph.read(ATLAS_EXISTS, {"atlas": atlas})[0]["n"]:
        if not replace:
            raise InvalidInput(
                f"atlas {atlas!r} already exists in this database (import with --replace to overwrite it)"
            )
        drop_atlas(graph, atlas)
    ensure_schema(graph)

    with tarfile.open(path, "r") as tar:
        props = _props(json.load(_member(tar, "atlas.json", path)), decode=True)
        graph.write(CREATE_ATLAS, {"props": props})
        saes = [_props(s, decode=True) for s in _lines(tar, "saes.jsonl.gz", path)]
        graph.write(CREATE_SAES, {"atlas": atlas, "rows": saes})
        for batch in _batches(_lines(tar, "features.jsonl.gz", path), _PAGE):
            rows = [_props(f, decode=True) for f in batch]
            graph.write(CREATE_FEATURES, {"rows": rows}, timeout=120)
        for batch in _batches(_lines(tar, "edges.jsonl.gz", path), 20_000):
            rows = [{"s": e["s"], "t": e["t"], "p": _props(e["p"], decode=True)} for e in batch]
            graph.write(CREATE_EDGES, {"rows": rows}, timeout=120)
    n_f, n_e, checksum = edge_checksum(graph, atlas)
    want = manifest["counts"]
    if (n_f, n_e) != (want["features"], want["edges"]) or checksum != manifest["edge_checksum"]:
        raise InvalidInput(
            f"import of {path} does not match its manifest: {n_f} features, {n_e} edges, checksum {checksum[:12]} in the "
            f"database vs {want['features']}, {want['edges']}, {manifest['edge_checksum'][:12]} in the archive; "
            f"atlas {atlas!r} is left incomplete (drop it with `atlas db drop {atlas}`)"
        )
    graph.write(SET_ATLAS, {"atlas": atlas, "props": props})
    return ArchiveSummary(atlas=atlas, features=n_f, edges=n_e, saes=len(saes), edge_checksum=checksum)
