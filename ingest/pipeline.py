"""``ingest_atlas``: manifest → validated decoders → matching → scores/edges → Neo4j, resumably.

Order of work (each step finishes before the next starts):
1. validate every SAE (nothing is written if any is bad);
2. write schema, the ``Atlas`` node (``complete = false``), the ``IngestRun`` and the ``SAE`` nodes;
3. per layer L, in increasing order — the unit of resumption: load decoders of ``res(L)``,
   ``att(L)``, ``mlp(L)`` (``res(L-1)`` is kept from the previous unit), match, compute scores and
   categories, then write: delete every edge into ``res(L)`` (leftovers of a killed run), MERGE the
   features of layer L, CREATE the edges into ``res(L)``, and mark layer L's SAE nodes complete;
4. mark the atlas complete.

Resumption: with ``resume=True`` layers whose SAE nodes are complete are skipped (their matching is
not recomputed, except ``res(L-1)`` decoders which are reloaded). Anything a killed run left of the
incomplete layer is overwritten (features MERGE) or deleted first (edges), so the final graph equals an
uninterrupted run's. Without ``resume`` every layer is rewritten (idempotent). A manifest whose SAE
set or sizes differ from the stored atlas first drops the old atlas.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from ingest.controls import atlas_controls, ceiling_controls
from ingest.decoders import DecoderCache, validate_atlas
from ingest.layer_matching import LayerMatch, match_layers
from ingest.matching import Backend
from ingest.options import DEFAULT_K, IngestOptions, IngestReport
from ingest.scores import Thresholds
from ingest.settings import IngestSettings, parse_memory_budget
from ingest.writer import LayerWriter, timed_write
from queries import ingest_writes as W
from queries import maintenance
from queries.atlases import known_atlases
from queries.categories import NEVER, stored_cuts
from queries.db import Graph
from queries.errors import AtlasNotFound, DatabaseUnavailable, InvalidInput
from queries.ids import sae_key
from queries.schema import CATEGORIES, NO_CATEGORY, ensure_schema
from saes.manifest import AtlasManifest
from saes.sources import neuronpedia_id

log = logging.getLogger(__name__)


def resumable(graph: Graph, manifest: AtlasManifest) -> bool:
    """Whether the graph holds an ingest of exactly this manifest (same fingerprint, revision included) that a
    ``resume`` may finish; otherwise a rebuild is needed (``atlas demo`` after retraining a profile)."""
    existing = graph.read(W.GET_ATLAS, {"name": manifest.name})
    return bool(existing) and existing[0]["sha"] == manifest.sha256()


def summarise_controls(graph: Graph, atlas: str) -> dict[str, Any]:
    """Write the Atlas-node view of the per-pair nulls (:func:`atlas_controls`) from its SAE nodes."""
    props = atlas_controls(graph.read(W.SAE_CONTROLS, {"atlas": atlas}))
    graph.write(W.SET_ATLAS_CONTROLS, {"atlas": atlas, "props": props})
    return props


def _sae_rows(
    manifest: AtlasManifest,
    d_model: int,
    sizes: dict[tuple[int, str], int],
    details: dict[tuple[int, str], dict[str, str]] | None = None,
) -> list[dict[str, Any]]:
    rows = []
    for e in manifest.saes:
        rows.append(
            {
                "key": sae_key(manifest.name, e.layer, e.module),
                "layer": e.layer,
                "module": e.module.value,
                "d_sae": sizes[(e.layer, e.module.value)],
                "d_in": d_model,
                "source": e.describe(),
                "neuronpedia_id": neuronpedia_id(e, manifest.base_dir),
                **(details or {}).get((e.layer, e.module.value), {}),  # hook_z SAEs: hook_name, w_o_source
            }
        )
    return rows


def _prepare(
    graph: Graph,
    manifest: AtlasManifest,
    opts: IngestOptions,
    d_model: int,
    sizes: dict[tuple[int, str], int],
    details: dict[tuple[int, str], dict[str, str]] | None = None,
) -> set[int]:
    """Write/refresh the metadata nodes; return the layers that a resumed run may skip."""
    name = manifest.name
    sha = manifest.sha256()
    existing = graph.read(W.GET_ATLAS, {"name": name})
    done: set[int] = set()
    if existing:
        ex = existing[0]
        stored = {(s["layer"], s["module"], s["d_sae"]) for s in ex["saes"] if s.get("layer") is not None}
        wanted = {(e.layer, e.module.value, sizes[(e.layer, e.module.value)]) for e in manifest.saes}
        if opts.resume:
            if ex["sha"] != sha or stored != wanted:
                raise InvalidInput(
                    f"atlas {name!r} in Neo4j was started from a different manifest; --resume can only finish the same one "
                    "(run without --resume to rebuild it from this manifest)"
                )
            rule = ex.get("rule") or f"fixed:{ex['t_res']:g}/{ex['t_mod']:g}"
            if (
                ex["k"] != opts.k
                or ex["t_res"] != opts.thresholds.res
                or ex["t_mod"] != opts.thresholds.module
                or rule != opts.thresholds.rule
            ):
                raise InvalidInput(
                    f"atlas {name!r} was started with k={ex['k']}, thresholds {rule}; "
                    f"--resume needs the same options (got k={opts.k}, thresholds {opts.thresholds.rule})"
                )
            had = tuple(ex.get("matchers") or ("cosine",))
            if had != tuple(opts.matchers):
                raise InvalidInput(
                    f"atlas {name!r} was started with matchers {','.join(had)}; --resume needs the same "
                    f"(got --matchers {','.join(opts.matchers)})"
                )
            done = set(ex["complete_layers"])
        elif stored != wanted:
            log.info("atlas %s exists with a different set of SAEs: dropping it first", name)
            maintenance.drop_atlas(graph, name, keep_steering_runs=True)  # a rebuild keeps the steering history
    graph.write(
        W.UPSERT_ATLAS,
        {
            "name": name,
            "model": manifest.model,
            "d_model": d_model,
            "n_layers": manifest.n_layers,
            "layers": manifest.layers,
            "sha": sha,
            "manifest_path": str(manifest.base_dir),
            "k": opts.k,
            "t_res": opts.thresholds.res,
            "t_mod": opts.thresholds.module,
            "rule": opts.thresholds.rule,
            # absent for cosine alone, so such an atlas's nodes are today's
            "matchers": list(opts.matchers) if tuple(opts.matchers) != ("cosine",) else None,
        },
    )
    if not opts.resume:
        done = set()
    graph.write(W.UPSERT_SAES, {"atlas": name, "rows": _sae_rows(manifest, d_model, sizes, details)})
    # UPSERT_SAES resets complete=false; restore the layers a resumed run keeps.
    for layer in sorted(done):
        graph.write(W.MARK_LAYER_COMPLETE, {"atlas": name, "layer": layer})
    return done


def ingest_atlas(
    manifest: AtlasManifest,
    graph: Graph,
    *,
    k: int = DEFAULT_K,
    resume: bool = False,
    thresholds: Thresholds | None = None,
    backend: Backend = "faiss",
    progress: bool = False,
    options: IngestOptions | None = None,
) -> IngestReport:
    """Ingest ``manifest`` into ``graph``; see the module docstring for the order and resume semantics."""
    opts = options or IngestOptions(
        k=k, thresholds=thresholds or Thresholds(), backend=backend, resume=resume, progress=progress
    )
    if opts.k < 1:
        raise InvalidInput(f"k = {opts.k} is not valid (use k ≥ 1; the default is {DEFAULT_K})")
    from tqdm.auto import tqdm

    details: dict[tuple[int, str], dict[str, str]] = {}
    cache = DecoderCache(0 if opts.ray else opts.decoder_cache_bytes)  # Ray tasks read their own decoders
    budget = opts.memory_budget or parse_memory_budget(IngestSettings().match_memory_budget)
    d_model, sizes = validate_atlas(
        manifest,
        progress=opts.progress,
        projections=opts.projections,
        details=details,
        cache=cache,
        stream_over=None if opts.ray else budget,
    )
    ceilings = ceiling_controls(manifest, d_model, opts.projections)
    graph.verify()
    ray_run = None
    if opts.ray:  # connect before anything is written: an unreachable cluster leaves the graph untouched
        from ingest import ray_matching

        ray_run = ray_matching.RayMatching(started_ray=ray_matching.connect(opts.ray, opts.gpu, opts.ray_num_cpus))
    t_start = time.perf_counter()
    writer: LayerWriter | None = None
    try:
        ensure_schema(graph)
        done = _prepare(graph, manifest, opts, d_model, sizes, details)
        cache.drop_layers({x for x in done if x + 1 in done or x + 1 not in manifest.layers})  # never matched again
        if ray_run is not None:
            ray_matching.submit(ray_run, manifest, [x for x in manifest.layers if x not in done], d_model, opts)
        run_id = f"{manifest.name}:{manifest.sha256()[:16]}"
        graph.write(
            W.UPSERT_RUN,
            {
                "atlas": manifest.name,
                "id": run_id,
                "k": opts.k,
                "backend": opts.backend,
                "resumed": int(bool(opts.resume)),
            },
        )
        report = IngestReport(manifest.name, [], [], 0, 0)
        report.layers_skipped = [x for x in manifest.layers if x in done]
        todo = [x for x in manifest.layers if x not in done]
        matches: Iterator[LayerMatch] = (
            ray_run.results(todo)
            if ray_run is not None
            else match_layers(manifest, todo, d_model, opts, cache=cache, sizes=sizes, memory_budget=budget)
        )
        bar = tqdm(
            total=len(manifest.layers),
            initial=len(done),
            desc=f"ingest {manifest.name}",
            unit="layer",
            disable=not opts.progress,
        )
        writer = LayerWriter(timed_write(graph, manifest.name, opts, report, bar), opts.overlap_writes)
        for m in matches:
            report.match_s += m.seconds  # with Ray: the wait for this layer's task
            if m.streamed:
                report.streamed_layers.append(m.layer)
            writer.submit(m.result)
            bar.update(1)
        bar.close()
        writer.finish()
        report.write_wait_s = writer.waited_s
        counts = graph.read(W.COUNT_ATLAS, {"atlas": manifest.name}, timeout=600)[0]
        report.n_features, report.n_edges = int(counts["features"]), int(counts["edges"])
        graph.write(
            W.MARK_ATLAS_COMPLETE, {"atlas": manifest.name, "n_features": report.n_features, "n_edges": report.n_edges}
        )
        for (layer, module), props in ceilings.items():
            graph.write(W.SET_SAE_CONTROLS, {"key": sae_key(manifest.name, layer, module), "props": props})
        summarise_controls(graph, manifest.name)
        graph.write(
            W.FINISH_RUN,
            {
                "id": run_id,
                "status": "complete",
                "n_features": report.n_features,
                "n_edges": report.n_edges,
                "seconds": time.perf_counter() - t_start,
            },
        )
        return report
    except DatabaseUnavailable as exc:
        raise DatabaseUnavailable(
            f"{' '.join(str(exc).split()).rstrip('.')}. The atlas {manifest.name!r} is left marked incomplete; once Neo4j answers again, finish it with `atlas ingest <atlas.toml> --resume`"
        ) from exc
    finally:
        if writer is not None:
            writer.close()  # a layer being written when something failed is finished (or fails) before we leave
        if ray_run is not None:
            ray_run.close()


def recategorize(graph: Graph, atlas: str, thresholds: Thresholds) -> dict[str, int]:
    """Recompute every ``res`` feature's category of a complete atlas from its stored scores with other
    thresholds (no matching, no decoders); the rule is stored on the ``Atlas`` node and, with its cuts, on
    each res ``SAE`` node. A null rule reads each pair's stored null quantile (0.99 or 0.999). Returns the
    count per category (``NO_CATEGORY``: features of layers without a ``res(L-1)`` SAE, left without one)."""
    state = graph.read(W.ATLAS_STATE, {"atlas": atlas})
    if not state:
        raise AtlasNotFound(atlas, known_atlases(graph))
    if not state[0]["complete"]:
        raise InvalidInput(
            f"atlas {atlas!r} is not completely ingested; finish it with `atlas ingest <atlas.toml> --resume` before recategorizing"
        )
    controls = {r["layer"]: r for r in graph.read(W.SAE_CONTROLS_FULL, {"atlas": atlas})}
    counts = dict.fromkeys((*CATEGORIES, NO_CATEGORY), 0)
    for layer in state[0]["layers"]:
        try:
            cuts = stored_cuts(controls.get(layer), thresholds.res, thresholds.module, thresholds.null_quantile)
        except InvalidInput as exc:
            raise InvalidInput(f"atlas {atlas!r}: {exc}") from None
        params = {"atlas": atlas, "layer": layer, "t_res": cuts["res"], "t_att": cuts["att"], "t_mlp": cuts["mlp"]}
        for row in graph.write(W.RECATEGORIZE_LAYER, params, timeout=600):
            counts[row["category"] or NO_CATEGORY] += int(row["n"])
        has_res = (controls.get(layer) or {}).get("res_score_median") is not None
        graph.write(
            W.SET_SAE_CONTROLS,
            {
                "key": sae_key(atlas, layer, "res"),
                "props": {
                    "category_rule": thresholds.rule if has_res else None,
                    **{f"cut_{p}": (v if has_res and v < NEVER else None) for p, v in cuts.items()},
                },
            },
        )
    graph.write(
        W.SET_ATLAS_THRESHOLDS,
        {"atlas": atlas, "t_res": thresholds.res, "t_mod": thresholds.module, "rule": thresholds.rule},
    )
    summarise_controls(graph, atlas)
    return counts
