"""Flow-graph steering as a service: one request in, baseline and steered text out, the run stored.

:class:`Steerer` is what the GraphQL mutation and ``atlas steer`` call. For a request it
1. checks every value (bounded prompts/tokens/strengths) and resolves the atlas and its features in
   Neo4j (unknown uid → FeatureNotFound; a uid of another atlas → InvalidInput);
2. finds the atlas's manifest (``SteeringSettings.manifests`` or the Atlas node's ``manifest_path``),
   loads the model it names (once per process) and its SAEs, checking they fit the model;
3. selects features: an explicit list as given, or per seed the flow graph from
   ``queries.flow_graph.build_flow_graph`` (the same builder as the API's ``lineage``) narrowed by the
   strategy and weighted by the schedule;
4. generates the baseline and the steered text with the same seed, and stores a ``SteeringRun``.

Invariants: nothing touches the model before the request is fully validated; the model lock is held by
each generation, so concurrent requests are safe; failures are AtlasError subclasses.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from queries.db import Graph
from queries.domain import MODULE_CUT, RESIDUAL_CUT
from queries.errors import AtlasNotFound, FeatureNotFound, InvalidInput
from queries.ids import FeatureRef, check_atlas_name, parse_uid
from steering.generate import GenerationConfig, check_prompts
from steering.interventions import (
    DEFAULT_ALPHA,
    DEFAULT_FINAL_STRENGTH,
    MAX_FEATURES,
    AppliedFeature,
    Mode,
    Schedule,
    SteerFeature,
    Strategy,
    Units,
    check_strength,
    merge_features,
)

log = logging.getLogger(__name__)


class SteeringSettings(BaseSettings):
    """Steering configuration (env prefix ``ATLAS_STEER_``), built once at the entry point."""

    model_config = SettingsConfigDict(env_prefix="ATLAS_STEER_", extra="ignore")

    # atlas.toml files (or folders holding them, searched one level deep) of the atlases that can be steered.
    manifests: list[str] = Field(default_factory=list)
    # Override the model named in the manifest (e.g. a local copy of it).
    model: str | None = None
    device: str = "cpu"
    store_runs: bool = True
    # torch intra-op threads for this process (None: torch's default). On a busy shared CPU, 1 avoids
    # OpenMP spin-waiting that can slow generation by more than 10×.
    torch_threads: int | None = Field(default=None, ge=1)


@dataclass
class SteerRequest:
    atlas: str
    prompts: list[str]
    # (uid, strength) → flow graphs / steered as given; strength None (units ALPHA only): the measured default α
    seeds: list[tuple[str, float | None]] = field(default_factory=list)
    features: list[tuple[str, float | None]] = field(default_factory=list)
    mode: Mode = Mode.ADD
    strategy: Strategy = Strategy.SEEDS
    layer: int | None = None
    schedule: Schedule = Schedule.CONSTANT
    alpha: float = DEFAULT_ALPHA
    final_strength: float = DEFAULT_FINAL_STRENGTH
    units: Units = Units.ACTIVATION
    min_similarity: float = RESIDUAL_CUT
    module_min_similarity: float = MODULE_CUT
    top_k: int = 1
    depth: int | None = None
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    manifest: str | None = None  # explicit atlas.toml (CLI); else settings / the Atlas node
    store: bool = True


@dataclass
class SteerResult:
    run_id: str | None
    atlas: str
    model: str
    prompts: list[str]
    baseline: list[str]
    steered: list[str]
    applied: list[AppliedFeature]
    l_start: int | None
    l_end: int | None
    baseline_tokens_per_s: float
    steered_tokens_per_s: float


class Steerer:
    """Runs steering requests against one Neo4j database. Thread-safe; reuse one per process."""

    def __init__(self, graph: Graph, settings: SteeringSettings | None = None) -> None:
        self.graph = graph
        self.settings = settings or SteeringSettings()
        self._manifests: dict[str, Any] = {}
        self._banks: dict[tuple[str, int], Any] = {}  # (manifest folder|sha, id(model)) -> steering.saes.SAEBank
        self._lock = threading.Lock()
        if self.settings.torch_threads:
            import torch

            torch.set_num_threads(self.settings.torch_threads)

    # -- resolution ------------------------------------------------------------------------------
    def register_manifest(self, path: str | Path) -> Any:
        from saes.manifest import load_manifest

        m = load_manifest(path)
        with self._lock:
            self._manifests[m.name] = m
        return m

    def manifest_for(self, atlas: str, info: dict[str, Any], explicit: str | None = None) -> Any:
        """The atlas's manifest (saes.locate.find_manifest), remembered once found or registered."""
        from saes.locate import find_manifest

        if explicit:
            return find_manifest(atlas, explicit=explicit)
        with self._lock:
            if atlas in self._manifests:
                return self._manifests[atlas]
        m = find_manifest(
            atlas,
            recorded=info.get("manifest_path"),
            search=self.settings.manifests,
            expected_sha256=info.get("manifest_sha256"),
        )
        with self._lock:
            self._manifests[atlas] = m
        return m

    def _bank(self, manifest: Any, lm: Any) -> Any:
        """This steerer's SAEBank of ``manifest`` for ``lm`` (SAEs load lazily inside it, once)."""
        from steering.saes import SAEBank

        key = (str(Path(manifest.base_dir).resolve()) + "|" + manifest.sha256(), id(lm))
        with self._lock:
            if key not in self._banks:
                self._banks[key] = SAEBank(manifest, lm)
            return self._banks[key]

    # -- the request -----------------------------------------------------------------------------
    def validate(
        self, req: SteerRequest
    ) -> tuple[list[str], list[tuple[FeatureRef, float | None]], list[tuple[FeatureRef, float | None]]]:
        check_atlas_name(req.atlas)
        prompts = check_prompts(req.prompts)
        req.generation.validated()
        if not req.seeds and not req.features:
            raise InvalidInput(
                'nothing to steer: give seeds (with a strategy) or an explicit features list, e.g. seeds: [{uid: "smollm2-demo/12-res/77", strength: 6}]'
            )
        if len(req.seeds) + len(req.features) > MAX_FEATURES:
            raise InvalidInput(f"{len(req.seeds) + len(req.features)} features given; at most {MAX_FEATURES}")
        what = "strength" if req.mode is Mode.ADD else "rescale factor r"
        for u, s in req.seeds + req.features:
            if s is None and (req.units is not Units.ALPHA or req.mode is not Mode.ADD):
                raise InvalidInput(
                    f"feature {u!r} has no {what}: give one, or steer in mode ADD with units ALPHA, whose default is "
                    "the atlas's measured α (Atlas.steerDefaultAlpha)"
                )
        seeds = [(parse_uid(u, req.atlas), None if s is None else check_strength(s, what)) for u, s in req.seeds]
        feats = [(parse_uid(u, req.atlas), None if s is None else check_strength(s, what)) for u, s in req.features]
        check_strength(req.final_strength, "finalStrength")
        if not (-5.0 <= req.alpha <= 5.0):
            raise InvalidInput(f"alpha {req.alpha} is out of range (valid: -5 to 5; the paper uses -0.05 and -0.25)")
        return prompts, seeds, feats

    def steer(self, req: SteerRequest) -> SteerResult:
        from queries.atlases import atlas_info, known_atlases
        from queries.flow_graph import Direction, build_flow_graph
        from queries.steering_runs import fetch_features
        from steering.generate import generate
        from steering.interventions import compile_plan, select_from_graph
        from steering.model import load_model

        prompts, given_seeds, given_feats = self.validate(req)
        info = atlas_info(self.graph, req.atlas)
        if info is None:
            raise AtlasNotFound(req.atlas, known_atlases(self.graph))
        stored = fetch_features(self.graph, [r.uid for r, _ in given_seeds + given_feats])
        for r, _ in given_seeds + given_feats:
            if r.uid not in stored:
                raise FeatureNotFound(
                    r.uid,
                    f"feature {r.uid!r} does not exist in atlas {req.atlas!r} (check the layer, module and index; `atlas cypher` or the API's features query lists them)",
                )
        manifest = self.manifest_for(req.atlas, info, req.manifest)
        lm = load_model(self.settings.model or manifest.model, device=self.settings.device)
        bank = self._bank(manifest, lm)
        if req.layer is not None and not 0 <= req.layer < lm.n_layers:
            raise InvalidInput(f"layer {req.layer} is out of range for model {lm.name} (valid: 0–{lm.n_layers - 1})")

        seeds, feats = self._default_strengths(req, given_seeds, given_feats)
        chosen: list[SteerFeature] = [SteerFeature(r, s, req.mode) for r, s in feats]
        spans: list[tuple[int | None, int | None]] = []
        for r, s in seeds:
            if req.strategy is Strategy.SEEDS:
                chosen.append(SteerFeature(r, s, req.mode))
                spans.append((r.layer, r.layer))
                continue
            fg = build_flow_graph(
                self.graph,
                [r],
                direction=Direction.BOTH,
                min_similarity=req.min_similarity,
                module_min_similarity=req.module_min_similarity,
                top_k=req.top_k,
                depth=req.depth,
            )
            spans.append((fg.l_start, fg.l_end))
            chosen.extend(
                select_from_graph(
                    fg,
                    req.strategy,
                    s,
                    layer=req.layer,
                    schedule=req.schedule,
                    alpha=req.alpha,
                    final=req.final_strength,
                    mode=req.mode,
                )
            )
        features = merge_features(chosen)
        if not features:
            raise InvalidInput(
                f"strategy {req.strategy.value} selected no features (layer {req.layer} holds none of the seeds' flow graphs; "
                "pick a layer inside the graph's span, or lower minSimilarity)"
            )
        plan = compile_plan(features, bank, units=req.units)
        base = generate(lm, prompts, req.generation)
        steered = generate(lm, prompts, req.generation, plan)
        starts = [a for a, _ in spans if a is not None]
        ends = [b for _, b in spans if b is not None]
        result = SteerResult(
            run_id=None,
            atlas=req.atlas,
            model=lm.name,
            prompts=prompts,
            baseline=base.texts,
            steered=steered.texts,
            applied=plan.applied,
            l_start=min(starts) if starts else None,
            l_end=max(ends) if ends else None,
            baseline_tokens_per_s=base.tokens_per_s,
            steered_tokens_per_s=steered.tokens_per_s,
        )
        if req.store and self.settings.store_runs:
            result.run_id = self._store(req, result, [s for _, s in seeds])
        return result

    def _default_strengths(
        self,
        req: SteerRequest,
        seeds: list[tuple[FeatureRef, float | None]],
        feats: list[tuple[FeatureRef, float | None]],
    ) -> tuple[list[tuple[FeatureRef, float]], list[tuple[FeatureRef, float]]]:
        """Strengths left out (units ALPHA): the α the steering benchmark chose for that feature where it tested it,
        else the atlas's default (the benchmark's median chosen α: single features for features and SEEDS, flow
        graphs for SINGLE/CUMULATIVE seeds), stored by ``atlas steerability --bench-json``."""
        missing = [r.uid for r, s in seeds + feats if s is None]
        from queries.steerability import bench_alphas, default_alphas

        tested = bench_alphas(self.graph, missing) if missing else {}
        defaults = default_alphas(self.graph, req.atlas) if missing else {"feature": None, "graph": None}
        graph_default = defaults["feature"] if req.strategy is Strategy.SEEDS else defaults["graph"]

        def pick(r: FeatureRef, s: float | None, default: float | None) -> float:
            if s is not None:
                return s
            if r.uid in tested:
                return tested[r.uid]
            if default is None:
                raise InvalidInput(
                    f"feature {r.uid!r} has no strength and atlas {req.atlas!r} has no measured default α "
                    f"(run `atlas steerability {req.atlas} --bench-json bench/results/steering-bench.json`), or give a strength"
                )
            return float(default)

        return (
            [(r, pick(r, s, graph_default)) for r, s in seeds],
            [(r, pick(r, s, defaults["feature"])) for r, s in feats],
        )

    def _store(self, req: SteerRequest, res: SteerResult, seed_strengths: list[float]) -> str:
        import json

        from queries.steering_runs import store_run

        run_id = f"{req.atlas}:{uuid.uuid4().hex[:16]}"
        g = req.generation
        props = {
            "atlas": req.atlas,
            "model": res.model,
            "prompts": res.prompts,
            "baseline": res.baseline,
            "steered": res.steered,
            "mode": req.mode.value,
            "strategy": req.strategy.value,
            "schedule": req.schedule.value,
            "units": req.units.value,
            "layer": req.layer,
            "alpha": req.alpha,
            "final_strength": req.final_strength,
            "seeds": [u for u, _ in req.seeds],
            "seed_strengths": [float(s) for s in seed_strengths],  # as applied (defaults resolved)
            "explicit_features": [u for u, _ in req.features],
            "graph_options": json.dumps(
                {
                    "min_similarity": req.min_similarity,
                    "module_min_similarity": req.module_min_similarity,
                    "top_k": req.top_k,
                    "depth": req.depth,
                }
            ),
            "max_new_tokens": g.max_new_tokens,
            "temperature": g.temperature,
            "top_p": g.top_p,
            "seed": g.seed,
            "chat": g.chat,
            "n_features": len(res.applied),
            "l_start": res.l_start,
            "l_end": res.l_end,
            "host": os.uname().nodename,
        }
        used = [
            {
                "uid": a.feature.uid,
                "coefficient": a.feature.coefficient,
                "mode": a.feature.mode.value,
                "unit": a.unit,
                "vector_norm": a.vector_norm,
            }
            for a in res.applied
        ]
        store_run(self.graph, run_id, props, used)
        return run_id
