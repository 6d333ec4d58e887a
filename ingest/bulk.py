"""The offline write path: CSV files for ``neo4j-admin database import full`` into a fresh database.

Use it for atlases of tens of millions of edges, or when a whole database is dedicated to one atlas:
the importer writes the store files directly (no transactions), but it needs the target database
stopped and replaces it entirely (``--overwrite-destination``) — never point it at a shared database.

This module only matches (exactly as the online path: :func:`ingest.layer_matching.match_layers`) and writes
CSVs, and says which ``neo4j-admin`` arguments import them (:meth:`BulkExport.admin_args`). Stopping,
importing into and restarting a server is the caller's job (``atlas ingest --bulk-csv DIR --bulk-import``
does it for the project's own server), which keeps ``ingest`` free of any server management.

Invariant: the imported graph equals the online path's graph for the same manifest and options — the
same ``Atlas`` (``complete = true``: the import is all-or-nothing), ``SAE``, ``IngestRun`` and
``Feature`` nodes with the same properties and types, the same ``FLOWS_TO`` edges (tested in
tests/integration/test_ingest.py). Constraints and indexes are not part of the import; they are
created by ``queries.schema.ensure_schema`` after the server starts (the CLI does it; so does the API).
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ingest.controls import CEILING_FIELDS, CONTROL_FIELDS, atlas_controls, ceiling_controls
from ingest.decoders import DecoderCache, validate_atlas
from ingest.layer_matching import match_layers
from ingest.options import IngestOptions
from ingest.scores import EdgeSet
from queries.ids import feature_uid, sae_key
from saes.manifest import AtlasManifest
from saes.sources import neuronpedia_id

log = logging.getLogger(__name__)

# Types follow what the online path stores: Python int → long, float → double.
FEATURE_HEADER = (
    "uid:ID(Feature),atlas,layer:long,module,index:long,d_sae:long,decoder_norm:double,"
    "s_res:double,s_att:double,s_mlp:double,category,:LABEL"
)
# SAE-node properties beyond the manifest's: the hook of hook_z SAEs and the res SAEs' null controls
SAE_EXTRA_FIELDS: dict[str, str] = {"hook_name": "string", "w_o_source": "string"} | CONTROL_FIELDS | CEILING_FIELDS
EDGE_HEADER = (
    ":START_ID(Feature),:END_ID(Feature),similarity:double,target_rank:long,source_rank:long,written_layer:long,:TYPE"
)


@dataclass
class BulkExport:
    """The CSVs of one atlas and the ``neo4j-admin`` arguments that import them into ``database``."""

    folder: Path
    node_files: list[Path] = field(default_factory=list)
    edge_files: list[Path] = field(default_factory=list)
    n_features: int = 0
    n_edges: int = 0
    seconds: float = 0.0
    match_s: float = 0.0
    database: str = "neo4j"

    def admin_args(self) -> list[str]:
        """Arguments after ``neo4j-admin`` (the database must be stopped; it is replaced)."""
        f = self.folder.resolve()
        # The database name goes first: --nodes/--relationships take several values and would swallow it.
        args = [
            "database",
            "import",
            "full",
            self.database,
            "--overwrite-destination=true",
            "--multiline-fields=false",
            f"--report-file={f / 'import.report'}",
            f"--nodes=Atlas={f / 'atlas.csv'}",
            f"--nodes=SAE={f / 'saes.csv'}",
            f"--nodes=IngestRun={f / 'run.csv'}",
            f"--relationships=HAS_SAE={f / 'has_sae.csv'}",
            f"--relationships=BUILT={f / 'built.csv'}",
        ]
        args += [f"--nodes=Feature={f / 'feature_header.csv'},{p.resolve()}" for p in self.node_files]
        args += [f"--relationships=FLOWS_TO={f / 'edge_header.csv'},{p.resolve()}" for p in self.edge_files]
        return args

    @property
    def command(self) -> str:
        return "neo4j-admin " + " ".join(self.admin_args())


def _col(values: Sequence[object] | None, n: int) -> list[str]:
    """A CSV column: ``repr`` keeps every double exact; an absent value is an empty field (no property)."""
    if values is None:
        return [""] * n
    return [
        "" if v is None or (isinstance(v, float) and np.isnan(v)) else (repr(v) if isinstance(v, float) else str(v))
        for v in values
    ]


def _rows(path: Path, header: str, rows: list[list[object]]) -> None:
    buf = io.StringIO()
    buf.write(header + "\n")
    csv.writer(buf, lineterminator="\n").writerows(rows)
    path.write_text(buf.getvalue())


def export_csv(manifest: AtlasManifest, folder: str | Path, opts: IngestOptions) -> BulkExport:
    """Match the whole atlas (as the online path does) and write import CSVs to ``folder``."""
    from tqdm.auto import tqdm

    if any(m != "cosine" for m in opts.matchers):
        from queries.errors import InvalidInput

        raise InvalidInput(
            f"--bulk-csv writes cosine edges only, not matchers {', '.join(opts.matchers[1:])}: "
            "ingest online for several matchers (drop --bulk-csv or use --matchers cosine)"
        )
    t0 = time.perf_counter()
    out = BulkExport(Path(folder))
    out.folder.mkdir(parents=True, exist_ok=True)
    cache = DecoderCache(opts.decoder_cache_bytes)
    details: dict[tuple[int, str], dict[str, str]] = {}
    d_model, sizes = validate_atlas(
        manifest, progress=opts.progress, projections=opts.projections, details=details, cache=cache
    )
    ceilings = ceiling_controls(manifest, d_model, opts.projections)  # per (layer, module): the seed ceiling
    controls: dict[int, dict[str, object]] = {}  # per layer: the res SAE's null controls and category rule
    name = manifest.name
    (out.folder / "feature_header.csv").write_text(FEATURE_HEADER + "\n")
    (out.folder / "edge_header.csv").write_text(EDGE_HEADER + "\n")
    matches = match_layers(manifest, manifest.layers, d_model, opts, cache=cache)  # in memory: no streaming here
    for m in tqdm(matches, total=len(manifest.layers), desc=f"export {name}", unit="layer", disable=not opts.progress):
        out.match_s += m.seconds
        controls[m.layer] = m.result.controls
        out.n_features += _write_features(out.folder / f"features_{m.layer}.csv", name, m.layer, m.result.features)
        out.node_files.append(out.folder / f"features_{m.layer}.csv")
        out.n_edges += _write_edges(out.folder / f"edges_{m.layer}.csv", name, m.layer, m.result.edges)
        out.edge_files.append(out.folder / f"edges_{m.layer}.csv")
    now = datetime.now(UTC).isoformat()
    _write_atlas_node(out, manifest, d_model, opts, controls, now)
    _write_sae_nodes(out.folder, manifest, d_model, sizes, details, controls, ceilings)
    out.seconds = time.perf_counter() - t0
    _write_run_node(out, manifest, opts, now)
    log.info("exported atlas %s: %d features, %d edges in %.1fs", name, out.n_features, out.n_edges, out.seconds)
    return out


def _write_features(path: Path, name: str, layer: int, features: dict[str, dict[str, Any]]) -> int:
    """One layer's Feature rows (every module's); returns how many."""
    # Names and module values are validated ([a-z0-9-], res|att|mlp), so only numbers need formatting.
    chunks = []
    total = 0
    for mod, c in features.items():
        n = len(c["index"])
        prefix = feature_uid(name, layer, mod, 0)[:-1]
        fixed = f",{name},{layer},{mod},"
        cols = zip(
            c["index"],
            _col(c["norm"], n),
            _col(c["s_res"], n),
            _col(c["s_att"], n),
            _col(c["s_mlp"], n),
            _col(c["category"], n),
        )
        chunks.append(
            "".join(
                f"{prefix}{i}{fixed}{i},{c['d_sae']},{nm},{sr},{sa},{sm},{cat},Feature\n"
                for i, nm, sr, sa, sm, cat in cols
            )
        )
        total += n
    path.write_text("".join(chunks))
    return total


def _write_edges(path: Path, name: str, layer: int, edges: Sequence[EdgeSet]) -> int:
    """The FLOWS_TO rows into ``res(layer)``; returns how many."""
    dst_prefix = feature_uid(name, layer, "res", 0)[:-1]
    chunks = []
    total = 0
    for es in edges:
        src_prefix = feature_uid(name, es.source_layer, es.source_module, 0)[:-1]
        tr = ["" if v < 0 else str(v) for v in es.target_rank.tolist()]
        sr = ["" if v < 0 else str(v) for v in es.source_rank.tolist()]
        wl = "" if es.written_layer is None else str(es.written_layer)
        chunks.append(
            "".join(
                f"{src_prefix}{s},{dst_prefix}{t},{sim!r},{a},{b},{wl},FLOWS_TO\n"
                for s, t, sim, a, b in zip(es.src.tolist(), es.dst.tolist(), es.sim.astype(float).tolist(), tr, sr)
            )
        )
        total += len(es)
    path.write_text("".join(chunks))
    return total


def _write_atlas_node(
    out: BulkExport,
    manifest: AtlasManifest,
    d_model: int,
    opts: IngestOptions,
    controls: dict[int, dict[str, object]],
    now: str,
) -> None:
    summary = atlas_controls([{"rule": c.get("category_rule"), **c} for c in controls.values()])
    _rows(
        out.folder / "atlas.csv",
        "name:ID(Atlas),model,d_model:long,n_layers:long,layers:long[],complete:boolean,manifest_sha256,manifest_path,k:long,"
        "threshold_res:double,threshold_module:double,threshold_rule,null_median_mean:double,null_p999_max:double,"
        "category_rules:string[],n_features:long,n_edges:long,created_at:datetime,updated_at:datetime,:LABEL",
        [
            [
                manifest.name,
                manifest.model,
                d_model,
                manifest.n_layers,
                ";".join(map(str, manifest.layers)),
                "true",
                manifest.sha256(),
                str(manifest.base_dir),
                opts.k,
                repr(float(opts.thresholds.res)),
                repr(float(opts.thresholds.module)),
                opts.thresholds.rule,
                *_col([summary["null_median_mean"], summary["null_p999_max"]], 2),
                ";".join(summary["category_rules"]),
                out.n_features,
                out.n_edges,
                now,
                now,
                "Atlas",
            ]
        ],
    )


def _write_sae_nodes(
    folder: Path,
    manifest: AtlasManifest,
    d_model: int,
    sizes: dict[tuple[int, str], int],
    details: dict[tuple[int, str], dict[str, str]],
    controls: dict[int, dict[str, object]],
    ceilings: dict[tuple[int, str], dict[str, Any]],
) -> None:
    name = manifest.name
    saes: list[list[object]] = []
    has: list[list[object]] = []
    for e in manifest.saes:
        key = sae_key(name, e.layer, e.module)
        extra = {
            **details.get((e.layer, e.module.value), {}),
            **(controls[e.layer] if e.module.value == "res" else {}),
            **ceilings.get((e.layer, e.module.value), {}),
        }
        saes.append(
            [
                key,
                name,
                e.layer,
                e.module.value,
                sizes[(e.layer, e.module.value)],
                d_model,
                e.describe(),
                neuronpedia_id(e, manifest.base_dir) or "",
                "true",
                *_col([extra.get(f) for f in SAE_EXTRA_FIELDS], len(SAE_EXTRA_FIELDS)),
                "SAE",
            ]
        )
        has.append([name, key, "HAS_SAE"])
    _rows(
        folder / "saes.csv",
        "key:ID(SAE),atlas,layer:long,module,d_sae:long,d_in:long,source,neuronpedia_id,complete:boolean,"
        + ",".join(f if SAE_EXTRA_FIELDS[f] == "string" else f"{f}:{SAE_EXTRA_FIELDS[f]}" for f in SAE_EXTRA_FIELDS)
        + ",:LABEL",
        saes,
    )
    _rows(folder / "has_sae.csv", ":START_ID(Atlas),:END_ID(SAE),:TYPE", has)


def _write_run_node(out: BulkExport, manifest: AtlasManifest, opts: IngestOptions, now: str) -> None:
    # The same run id as the online path's, so a later online re-ingest updates this node in place.
    name = manifest.name
    run_id = f"{name}:{manifest.sha256()[:16]}"
    _rows(
        out.folder / "run.csv",
        "id:ID(IngestRun),atlas,status,k:long,backend,resumed:long,n_features:long,n_edges:long,seconds:double,"
        "started_at:datetime,finished_at:datetime,path,:LABEL",
        [
            [
                run_id,
                name,
                "complete",
                opts.k,
                opts.backend,
                0,
                out.n_features,
                out.n_edges,
                repr(out.seconds),
                now,
                now,
                "bulk",
                "IngestRun",
            ]
        ],
    )
    _rows(out.folder / "built.csv", ":START_ID(IngestRun),:END_ID(Atlas),:TYPE", [[run_id, name, "BUILT"]])
