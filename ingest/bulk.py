"""The offline write path: CSV files for ``neo4j-admin database import full`` into a fresh database.

Use it for atlases of tens of millions of edges, or when a whole database is dedicated to one atlas:
the importer writes the store files directly (no transactions), but it needs the target database
stopped and replaces it entirely (``--overwrite-destination``) — never point it at a shared database.
The graph it produces follows ``queries.schema`` exactly like the online path (the Atlas is written
``complete = true`` since the import is all-or-nothing); constraints and indexes are created by
``queries.schema.ensure_schema`` on first connection (``atlas ingest`` and the API call it).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ingest.decoders import Decoder, load_unit_decoder, validate_atlas
from ingest.pipeline import IngestOptions, match_layer
from queries.ids import Module, feature_uid, sae_key
from saes.manifest import AtlasManifest

log = logging.getLogger(__name__)

FEATURE_HEADER = "uid:ID(Feature),atlas,layer:int,module,index:int,d_sae:int,decoder_norm:float,s_res:float,s_att:float,s_mlp:float,category,:LABEL"
EDGE_HEADER = ":START_ID(Feature),:END_ID(Feature),similarity:float,target_rank:int,source_rank:int,:TYPE"


@dataclass
class BulkExport:
    folder: Path
    node_files: list[Path] = field(default_factory=list)
    edge_files: list[Path] = field(default_factory=list)
    n_features: int = 0
    n_edges: int = 0
    seconds: float = 0.0
    database: str = "neo4j"

    def admin_args(self) -> list[str]:
        f = self.folder
        args = ["database", "import", "full", "--overwrite-destination=true", "--multiline-fields=false",
                f"--nodes=Atlas={f / 'atlas.csv'}", f"--nodes=SAE={f / 'saes.csv'}", f"--relationships=HAS_SAE={f / 'has_sae.csv'}"]
        args += [f"--nodes=Feature={f / 'feature_header.csv'},{p}" for p in self.node_files]
        args += [f"--relationships=FLOWS_TO={f / 'edge_header.csv'},{p}" for p in self.edge_files]
        return [*args, self.database]

    @property
    def command(self) -> str:
        return "neo4j-admin " + " ".join(self.admin_args())


def _fmt(v: float | None) -> str:
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else repr(float(v))


def export_csv(manifest: AtlasManifest, folder: str | Path, opts: IngestOptions) -> BulkExport:
    """Match the whole atlas (as the online path does) and write import CSVs to ``folder``."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    out = BulkExport(Path(folder))
    out.folder.mkdir(parents=True, exist_ok=True)
    d_model, sizes = validate_atlas(manifest, progress=opts.progress)
    name = manifest.name
    (out.folder / "feature_header.csv").write_text(FEATURE_HEADER + "\n")
    (out.folder / "edge_header.csv").write_text(EDGE_HEADER + "\n")
    prev_res: Decoder | None = None
    for layer in tqdm(manifest.layers, desc=f"export {name}", unit="layer", disable=not opts.progress):
        dec = {m.value: load_unit_decoder(e, manifest.base_dir, d_model) for m in Module if (e := manifest.entry(layer, m)) is not None}
        r = match_layer(layer, dec, prev_res, opts.k, opts.thresholds, opts.backend)
        lines = []
        for mod, c in r.features.items():
            prefix = feature_uid(name, layer, mod, 0)[:-1]
            col = lambda key, i: _fmt(c[key][i]) if c[key] is not None else ""  # noqa: E731
            for i in c["index"]:
                cat = c["category"][i] if c["category"] is not None else ""
                lines.append(f"{prefix}{i},{name},{layer},{mod},{i},{c['d_sae']},{_fmt(c['norm'][i])},{col('s_res', i)},{col('s_att', i)},{col('s_mlp', i)},{cat},Feature")
        p = out.folder / f"features_{layer}.csv"
        p.write_text("\n".join(lines) + "\n")
        out.node_files.append(p)
        out.n_features += len(lines)
        elines = []
        dst_prefix = feature_uid(name, layer, "res", 0)[:-1]
        for es in r.edges:
            src_prefix = feature_uid(name, es.source_layer, es.source_module, 0)[:-1]
            for s, t, sim, tr, sr in zip(es.src.tolist(), es.dst.tolist(), es.sim.tolist(), es.target_rank.tolist(), es.source_rank.tolist()):
                elines.append(f"{src_prefix}{s},{dst_prefix}{t},{sim!r},{'' if tr < 0 else tr},{'' if sr < 0 else sr},FLOWS_TO")
        p = out.folder / f"edges_{layer}.csv"
        p.write_text("\n".join(elines) + "\n")
        out.edge_files.append(p)
        out.n_edges += len(elines)
        prev_res = dec["res"]
    layers = ";".join(map(str, manifest.layers))
    (out.folder / "atlas.csv").write_text(
        "name:ID(Atlas),model,d_model:int,n_layers:int,layers:int[],complete:boolean,manifest_sha256,k:int,threshold_res:float,threshold_module:float,n_features:int,n_edges:int,:LABEL\n"
        f"{name},{manifest.model},{d_model},{manifest.n_layers},{layers},true,{manifest.sha256()},{opts.k},{opts.thresholds.res},{opts.thresholds.module},{out.n_features},{out.n_edges},Atlas\n"
    )
    sae_lines = ["key:ID(SAE),atlas,layer:int,module,d_sae:int,d_in:int,source,complete:boolean,:LABEL"]
    has = [":START_ID(Atlas),:END_ID(SAE),:TYPE"]
    for e in manifest.saes:
        key = sae_key(name, e.layer, e.module)
        sae_lines.append(f'{key},{name},{e.layer},{e.module.value},{sizes[(e.layer, e.module.value)]},{d_model},"{e.describe()}",true,SAE')
        has.append(f"{name},{key},HAS_SAE")
    (out.folder / "saes.csv").write_text("\n".join(sae_lines) + "\n")
    (out.folder / "has_sae.csv").write_text("\n".join(has) + "\n")
    out.seconds = time.perf_counter() - t0
    return out


def import_into_local(export: BulkExport, settings: object) -> float:
    """Run ``neo4j-admin database import full`` against a *stopped* project server (``LocalNeo4jSettings``);
    returns seconds. Replaces that server's database."""
    from atlas_cli import local_neo4j
    from queries.errors import AtlasError

    t0 = time.perf_counter()
    proc = local_neo4j.admin(settings, *export.admin_args())  # type: ignore[arg-type]
    if proc.returncode != 0:
        raise AtlasError(f"neo4j-admin import failed (exit {proc.returncode}): {(proc.stdout + proc.stderr).strip()[-600:]}")
    return time.perf_counter() - t0
