"""Feature pages as files and on the graph: the feature_pages.jsonl beside each SAE (and feature_pages.json
with the per-SAE density) as a cache, :func:`atlas_pages` computing them once per atlas, :func:`store_atlas_pages`
writing them onto the Feature/SAE/Atlas nodes, and the two publish steps (a trained atlas's held-out split; any
corpus). The pages themselves are computed by training.feature_pages."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from steering.model import LoadedModel
    from training.corpus import Chunk
from training.feature_pages import PAGE_VERSION, PAGES_FILE, PageOptions, PagesResult, compute_pages


def write_pages_file(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    n = 0
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
            n += 1
    tmp.replace(path)
    return n


def read_pages_file(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


PAGES_META = "feature_pages.json"


def sae_pages_path(base_dir: Path, sae_path: str) -> Path:
    return Path(base_dir) / sae_path / PAGES_FILE


def atlas_pages(
    manifest: Any,
    loaded: LoadedModel,
    chunks: Iterable[Chunk],
    *,
    heldout_tokens: int,
    seq_len: int,
    out_dir: Path | None = None,
    opts: PageOptions | None = None,
    force: bool = False,
) -> PagesResult:
    """Pages for every local SAE of an atlas manifest (``saes.manifest.AtlasManifest``); cached as files in
    ``out_dir`` (``feature_pages.jsonl`` beside each SAE, ``feature_pages.json`` with the per-SAE density):
    a second call reads them instead of running the model."""
    from saes.sources import load_sae

    base = Path(out_dir or manifest.base_dir)
    meta_path = base / PAGES_META
    entries = [e for e in manifest.saes if e.path]
    if not force and meta_path.is_file() and all(sae_pages_path(base, e.path).is_file() for e in entries):
        meta = json.loads(meta_path.read_text())
        return PagesResult(
            {(e.layer, e.module.value): read_pages_file(sae_pages_path(base, e.path)) for e in entries},
            {(e.layer, e.module.value): meta["density"][f"{e.layer}-{e.module.value}"] for e in entries},
            int(meta["heldout_tokens"]),
            {"cached": 1.0},
        )
    saes = [(e.layer, e.module.value, load_sae(e, manifest.base_dir)) for e in entries]
    res = compute_pages(loaded, saes, chunks, heldout_tokens=heldout_tokens, seq_len=seq_len, opts=opts)
    for e in entries:
        write_pages_file(sae_pages_path(base, e.path), res.pages[(e.layer, e.module.value)])
    meta_path.write_text(
        json.dumps(
            {
                "heldout_tokens": res.heldout_tokens,
                "density": {f"{k[0]}-{k[1]}": v for k, v in res.density.items()},
                "seconds": res.seconds,
                "version": PAGE_VERSION,
            }
        )
    )
    return res


def store_atlas_pages(graph: Any, atlas: str, res: PagesResult) -> dict[str, Any]:
    """Pages onto the Feature nodes, density onto the SAE nodes, the largest lineages onto the Atlas node."""
    from queries.feature_pages import store_entry_points, store_pages, store_sae_density
    from queries.ids import feature_uid, sae_key

    t = time.perf_counter()
    n = 0
    chars = 0
    for (layer, module), rows in res.pages.items():
        payload = []
        for r in rows:
            text = json.dumps({k: v for k, v in r.items() if k != "index"}, ensure_ascii=False, separators=(",", ":"))
            chars += len(text.encode("utf-8"))
            payload.append({"uid": feature_uid(atlas, layer, module, int(r["index"])), "page": text})
        n += store_pages(graph, payload)
    store_sae_density(graph, [{"key": sae_key(atlas, k[0], k[1]), **v} for k, v in res.density.items()])
    entry = store_entry_points(graph, atlas)
    return {
        "features": n,
        "bytes_per_feature": round(chars / max(1, n), 1),
        "store_s": round(time.perf_counter() - t, 2),
        "entry_points": len(entry),
    }


def _stored_summary(load_s: float, res: PagesResult, stored: dict[str, Any]) -> dict[str, float]:
    """The timings and sizes a publish step reports (the demo's and the benchmark's ``pages_*`` figures)."""
    return {
        "pages_load_s": round(load_s, 2),
        **{f"pages_{k}": float(v) for k, v in res.seconds.items()},
        "pages_store_s": stored["store_s"],
        "pages_bytes_per_feature": stored["bytes_per_feature"],
        "pages_features": float(stored["features"]),
    }


def publish_trained_pages(
    out_dir: Path, metrics: dict[str, Any], manifest: Any, graph: Any, *, force: bool = False
) -> dict[str, float]:
    """The demo's step: pages of an atlas trained by ``atlas train`` (its held-out split and packing, from the
    spec in ``metrics.json``), computed once (then read from the files) and stored. Returns timings."""
    from steering.model import load_model
    from training.corpus import load_split

    spec = metrics["spec"]
    t = time.perf_counter()
    loaded = load_model(metrics.get("model") or spec.get("model"), device="cpu")
    split = load_split(
        Path(metrics["corpus"]), held_out_fraction=spec["held_out_fraction"], text_field=spec.get("text_field", "text")
    )
    load_s = time.perf_counter() - t
    res = atlas_pages(
        manifest,
        loaded,
        split.held_out,
        heldout_tokens=int(spec["heldout_tokens"]),
        seq_len=int(spec["seq_len"]),
        out_dir=Path(out_dir),
        force=force,
    )
    return _stored_summary(load_s, res, store_atlas_pages(graph, manifest.name, res))


def publish_corpus_pages(
    manifest: Any, graph: Any, corpus: Path, *, tokens: int, seq_len: int = 128, force: bool = False
) -> dict[str, float]:
    """Pages of any ingested atlas from a text corpus (every chunk is used: give text the SAEs were not trained on)."""
    from steering.model import load_model
    from training.corpus import chunk_document, iter_documents

    t = time.perf_counter()
    loaded = load_model(manifest.model, device="cpu")
    chunks = [c for doc_id, text in iter_documents(Path(corpus)) for c in chunk_document(doc_id, text)]
    load_s = time.perf_counter() - t
    res = atlas_pages(manifest, loaded, chunks, heldout_tokens=tokens, seq_len=seq_len, force=force)
    return _stored_summary(load_s, res, store_atlas_pages(graph, manifest.name, res))
