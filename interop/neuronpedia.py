"""Neuronpedia's dataset-export layout, both ways: ``atlas export --format neuronpedia`` and ``atlas labels import``.

Neuronpedia publishes its data as ``{MODEL_ID}/{SOURCE_ID}/features/batch-N.jsonl.gz`` and
``.../explanations/batch-N.jsonl.gz`` (one gzipped JSON object per line; docs.neuronpedia.org, "Exports").
We write the same layout with the field names of its ``Neuron`` and ``Explanation`` records:

- features: ``modelId``, ``layer`` (the source id, ``{layer}-{set}``), ``index`` (a string, as Neuronpedia
  stores it), ``sourceSetName``, ``hookName``, ``maxActApprox``, ``frac_nonzero``;
- explanations (labelled features only): ``id``, ``modelId``, ``layer``, ``index``, ``description``,
  ``typeName``, ``explanationModelName``, ``authorId``, ``scoreV1``.

Identity (queries.neuronpedia): an SAE with a Neuronpedia id is exported under it, so the files sit beside
Neuronpedia's own; other SAEs get ``{model slug}/{layer}-{atlas}-{module}``. The import matches each
explanation by (modelId, layer = source id, index) to the SAE with that identity, i.e. by
model / layer / set / index, and reports how many matched.

Nothing half-written: the export writes into a hidden folder beside its target and moves each source
folder in place at the end; the import validates every line before it writes any label.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from queries import neuronpedia as qnp
from queries.atlases import known_atlases
from queries.db import Graph
from queries.errors import AtlasNotFound, InvalidInput
from queries.ids import feature_uid

log = logging.getLogger(__name__)

EXPLANATION_TYPE = "feature-atlas-top-tokens"  # our labels: the distinct top-activating tokens (training.labels)
EXPLAINER = "feature-atlas"
DEFAULT_BATCH = 4096


@dataclass
class ExportReport:
    atlas: str
    folder: Path
    sources: list[str] = field(default_factory=list)  # "{model}/{source}" written
    features: int = 0
    explanations: int = 0
    files: int = 0


def _sources(graph: Graph, atlases: list[str] | None) -> list[dict[str, Any]]:
    return graph.read(qnp.SAE_SOURCES, {"atlases": atlases})


class _BatchWriter:
    """``batch-0.jsonl.gz``, ``batch-1.jsonl.gz``, ... of at most ``size`` lines each."""

    def __init__(self, folder: Path, size: int) -> None:
        self.folder, self.size = folder, size
        self.n_files = self.n_lines = self._in_file = 0
        self._fh: Any = None

    def write(self, obj: dict[str, Any]) -> None:
        if self._fh is None or self._in_file >= self.size:
            self.close()
            self.folder.mkdir(parents=True, exist_ok=True)
            # mtime=0: identical content gives identical bytes (reproducible exports)
            self._fh = gzip.GzipFile(self.folder / f"batch-{self.n_files}.jsonl.gz", "wb", mtime=0)
            self.n_files += 1
            self._in_file = 0
        self._fh.write((json.dumps(obj, ensure_ascii=False) + "\n").encode())
        self._in_file += 1
        self.n_lines += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def export_neuronpedia(
    graph: Graph, atlas: str, folder: str | Path, *, batch_size: int = DEFAULT_BATCH
) -> ExportReport:
    """Write ``atlas`` in Neuronpedia's export layout under ``folder`` (module doc); returns what was written."""
    if batch_size < 1:
        raise InvalidInput(f"batch size {batch_size} must be at least 1")
    saes = _sources(graph, [atlas])
    if not saes:
        raise AtlasNotFound(atlas, known_atlases(graph))
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise InvalidInput(f"export folder {str(out)!r} is a file (give a folder; it is created if missing)")
    out.mkdir(parents=True, exist_ok=True)
    report = ExportReport(atlas=atlas, folder=out)
    staging = Path(tempfile.mkdtemp(prefix=".neuronpedia-export-", dir=out))
    try:
        for sae in saes:
            src = qnp.effective_source(sae, sae["atlas_model"])
            base = staging / src.model / src.source
            feats, expls = _BatchWriter(base / "features", batch_size), _BatchWriter(base / "explanations", batch_size)
            after = -1
            while True:
                rows = graph.read(
                    qnp.SAE_FEATURE_PAGE,
                    {"atlas": atlas, "layer": sae["layer"], "module": sae["module"], "after": after, "limit": 10_000},
                )
                if not rows:
                    break
                for r in rows:
                    feats.write(
                        {
                            "modelId": src.model,
                            "layer": src.source,
                            "index": str(r["index"]),
                            "sourceSetName": src.set,
                            "hookName": sae.get("hook_name"),
                            "maxActApprox": r.get("max_activation") or 0.0,
                            "frac_nonzero": r.get("frequency") or 0.0,
                        }
                    )
                    if r.get("label"):
                        expls.write(
                            {
                                "id": f"{src.model}/{src.source}/{r['index']}",
                                "modelId": src.model,
                                "layer": src.source,
                                "index": str(r["index"]),
                                "description": r["label"],
                                "typeName": EXPLANATION_TYPE,
                                "explanationModelName": EXPLAINER,
                                "authorId": EXPLAINER,
                                "scoreV1": 0.0,
                            }
                        )
                after = rows[-1]["index"]
            feats.close()
            expls.close()
            report.sources.append(src.id)
            report.features += feats.n_lines
            report.explanations += expls.n_lines
            report.files += feats.n_files + expls.n_files
        for src_id in report.sources:  # move each finished source in place
            target = out / src_id
            if target.exists():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / src_id, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info(
        "exported %s: %d features, %d explanations in %d files",
        atlas,
        report.features,
        report.explanations,
        report.files,
    )
    return report


# -- import ------------------------------------------------------------------------------------------
@dataclass
class LabelImportReport:
    files: int = 0
    records: int = 0
    matched: int = 0  # explanations that name a feature of the atlas (by model/layer/set/index)
    labelled: int = 0  # features whose label was written
    unmatched_source: int = 0  # model/source not among the atlas's SAEs
    out_of_range: int = 0  # index beyond the SAE's width
    empty: int = 0  # explanations without a description
    models: list[str] = field(default_factory=list)
    by_source: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        return (
            f"{self.matched} of {self.records} explanations matched a feature ({self.labelled} features labelled) "
            f"from {self.files} file(s); unmatched source {self.unmatched_source}, index out of range {self.out_of_range}, "
            f"empty {self.empty}"
        )


def explanation_files(folder: str | Path) -> list[Path]:
    """Every ``explanations*/batch-N.jsonl[.gz]`` under ``folder`` (or the batch files in it), in batch order."""
    root = Path(folder)
    if not root.exists():
        raise InvalidInput(
            f"folder {str(root)!r} does not exist (give a folder holding Neuronpedia explanation exports)"
        )
    if root.is_file():
        return [root]
    files = [
        p
        for p in root.rglob("batch-*.jsonl*")
        if p.parent.name.startswith("explanations") and p.suffix in (".gz", ".jsonl")
    ]
    if not files:
        raise InvalidInput(
            f"no explanation exports under {str(root)!r} (expected {{model}}/{{source}}/explanations/batch-N.jsonl.gz, "
            "as in Neuronpedia's exports or `atlas export --format neuronpedia`)"
        )

    def key(p: Path) -> tuple[str, int]:
        stem = p.name.split(".", 1)[0]
        num = stem.removeprefix("batch-")
        return (str(p.parent), int(num) if num.isdigit() else 0)

    return sorted(files, key=key)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for i, line in enumerate(fh, 1):
                if line.strip():
                    yield i, line
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path} could not be read ({type(exc).__name__}: {exc}); re-download the export") from None


def _record(path: Path, lineno: int, line: str) -> tuple[str, str, int, str, float]:
    where = f"{path}:{lineno}"
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{where} is not JSON ({exc.msg}); each line of an export holds one JSON object") from None
    if not isinstance(rec, dict):
        raise InvalidInput(f"{where} holds {type(rec).__name__}, not a JSON object")
    for key in ("modelId", "layer", "index"):
        if rec.get(key) in (None, ""):
            raise InvalidInput(
                f"{where} has no {key!r} (an explanation names modelId, layer = source id, index, description)"
            )
    try:
        index = int(rec["index"])
    except (TypeError, ValueError):
        raise InvalidInput(f"{where}: index {rec['index']!r} is not an integer") from None
    score = rec.get("scoreV1")
    return (
        str(rec["modelId"]),
        str(rec["layer"]),
        index,
        str(rec.get("description") or "").strip(),
        float(score) if isinstance(score, (int, float)) else 0.0,
    )


def import_labels(
    graph: Graph, folder: str | Path, *, atlas: str | None = None, batch_size: int = 5_000
) -> LabelImportReport:
    """Read Neuronpedia explanation exports under ``folder`` into feature labels (module doc).

    With several explanations for one feature the highest ``scoreV1`` wins (the first on ties). Raises
    InvalidInput, before writing anything, for a malformed line or an export of another model.
    """
    files = explanation_files(folder)
    saes = _sources(graph, [atlas] if atlas else None)
    if atlas and not saes:
        raise AtlasNotFound(atlas, known_atlases(graph))
    # Several atlases may hold the same SAE (e.g. two atlases from one SAELens release): label each of them.
    by_source: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for sae in saes:
        src = qnp.effective_source(sae, sae["atlas_model"])
        by_source.setdefault((src.model, src.source), []).append(sae)
    atlas_models = sorted({m for m, _ in by_source})
    report = LabelImportReport(files=len(files))
    best: dict[str, tuple[float, str, str]] = {}  # uid -> (score, label, source)
    seen_models: set[str] = set()
    for path in files:
        for lineno, line in _lines(path):
            model, source, index, description, score = _record(path, lineno, line)
            report.records += 1
            seen_models.add(model)
            candidates = by_source.get((model, source))
            if not candidates:
                report.unmatched_source += 1
                continue
            in_range = [sae for sae in candidates if 0 <= index < int(sae["d_sae"] or 0)]
            if not in_range:
                report.out_of_range += 1
                continue
            if not description:
                report.empty += 1
                continue
            report.matched += 1
            for sae in in_range:
                uid = feature_uid(sae["atlas"], sae["layer"], sae["module"], index)
                if uid not in best or score > best[uid][0]:
                    best[uid] = (score, description, f"neuronpedia:{model}/{source}")
    report.models = sorted(seen_models)
    if report.records and not seen_models & set(atlas_models):
        whose = f"atlas {atlas!r} is" if atlas else "the atlases are"
        raise InvalidInput(
            f"the Neuronpedia export under {str(folder)!r} is for model(s) {', '.join(report.models)}, but {whose} "
            f"Neuronpedia model(s) {', '.join(atlas_models) or 'none'} (import an export of the atlas's own model, "
            'or give its SAEs their Neuronpedia ids with neuronpedia = "model/layer-set" in atlas.toml)'
        )
    rows = [{"uid": uid, "label": label, "source": src} for uid, (_, label, src) in sorted(best.items())]
    for a in range(0, len(rows), batch_size):
        res = graph.write(qnp.SET_IMPORTED_LABELS, {"rows": rows[a : a + batch_size]})
        report.labelled += int(res[0]["n"]) if res else 0
    for _, _, origin in best.values():
        report.by_source[origin] = report.by_source.get(origin, 0) + 1
    log.info("labels import: %s", report.summary())
    return report
