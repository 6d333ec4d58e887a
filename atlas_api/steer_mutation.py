"""The ``steer`` mutation: GraphQL types and resolver over :class:`steering.service.Steerer`.

``atlas_api.schema`` merges :class:`SteerMutation` into the Mutation root; the API key guard of
``atlas_api.limits`` covers it like every mutation. Expected failures are union members
(``FeatureNotFound | InvalidInput | ModelUnavailable``); the model runs in a worker thread so the event
loop keeps serving other requests, and the model's lock serialises generations (no interleaved hooks).
One steerer (sync Neo4j client + cached model/SAEs, or a remote worker) per app: :class:`Steerers`, built from
the settings the app was started with (no settings are built in the resolver).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Annotated, Any

import strawberry

from atlas_api.settings import ApiSettings
from atlas_api.types import FeatureNotFound, InvalidInput, Module
from queries import errors as qerrors
from queries.domain import MODULE_CUT, RESIDUAL_CUT
from queries.settings import Neo4jSettings
from steering.interventions import Mode as SteerMode  # torch-free at import: the enums and pure planning only
from steering.interventions import Schedule as SteerSchedule
from steering.interventions import Strategy as SteerStrategy
from steering.interventions import Units as StrengthUnits
from steering.service import SteeringSettings  # torch-free at import

# The steering domain's own enums, exposed as GraphQL enums (strawberry.enum marks the classes themselves).
strawberry.enum(
    SteerMode,
    name="SteerMode",
    description="ADD: h += s·u·d at every position. RESCALE: h += (r−1)·a·d with a encoded on the fly (r = 0 removes the feature).",
)
strawberry.enum(
    SteerStrategy,
    name="SteerStrategy",
    description="paper §5.1: SEEDS = the seeds only; SINGLE = the flow graph's features at `layer`; CUMULATIVE = from l_start up to `layer`.",
)
strawberry.enum(
    SteerSchedule,
    name="SteerSchedule",
    description="Coefficient per layer for CUMULATIVE: constant s; exponential s·e^{α(l−l_start)}; linear from s at l_start to finalStrength at l_end.",
)
strawberry.enum(
    StrengthUnits,
    name="StrengthUnits",
    description="ACTIVATION: strength s adds s × the feature's typical activation along its decoder row. RAW: s × the decoder row as stored. THRESHOLD (JumpReLU SAEs): s × θ × the decoder row, the paper's folded decoder. ALPHA: the steering benchmark's axis, a vector of per-token norm s × the hook's median ‖h‖ (SAEInfo.medianNorm) along the unit decoder row; the strength may be left out (the measured default).",
)


@strawberry.input(description="A feature and its strength (ADD) or factor r (RESCALE).")
class SteerFeatureInput:
    uid: str = strawberry.field(description="Full uid `atlas/12-res/77`, or `12/res/77` within the input's atlas.")
    strength: float | None = strawberry.field(
        default=None,
        description="Required except with units ALPHA (mode ADD), where it defaults to the measured best: the α the "
        "steering benchmark chose for this feature, else the atlas's steerDefaultAlpha (Graph for flow-graph strategies).",
    )


@strawberry.input(
    description="Flow-graph cuts (paper §3): the residual chain stops below minSimilarity; att/mlp nodes below moduleMinSimilarity are dropped."
)
class SteerGraphInput:
    min_similarity: float = RESIDUAL_CUT
    module_min_similarity: float = MODULE_CUT
    top_k: int = 1
    depth: int | None = None


@strawberry.input
class SteerInput:
    atlas: str
    prompt: str | None = strawberry.field(default=None, description="One prompt (or use `prompts` for a batch).")
    prompts: list[str] | None = strawberry.field(default=None, description="Up to 16 prompts, generated as one batch.")
    seeds: list[SteerFeatureInput] = strawberry.field(
        default_factory=list, description="Seed features: their flow graphs are steered per `strategy`."
    )
    features: list[SteerFeatureInput] = strawberry.field(
        default_factory=list, description="Features steered exactly as given (no graph)."
    )
    mode: SteerMode = SteerMode.ADD
    strategy: SteerStrategy = SteerStrategy.SEEDS
    layer: int | None = strawberry.field(
        default=None,
        description="The paper's l: SINGLE's layer (default: the seed's), CUMULATIVE's last layer (default: l_end).",
    )
    schedule: SteerSchedule = SteerSchedule.CONSTANT
    alpha: float = -0.05
    final_strength: float = strawberry.field(
        default=1.0, description="s* of the LINEAR schedule (the coefficient at l_end)."
    )
    units: StrengthUnits = StrengthUnits.ACTIVATION
    graph: SteerGraphInput | None = None
    max_new_tokens: int = 36
    temperature: float = strawberry.field(default=1.0, description="0 = greedy.")
    top_p: float = 1.0
    seed: int = 0
    chat: bool = strawberry.field(
        default=False, description="Wrap each prompt as a user turn of the model's chat template."
    )
    store: bool = strawberry.field(
        default=True, description="Store the run as a SteeringRun node linked to the features it used."
    )


@strawberry.type(
    description="One feature that was steered, with the coefficient actually applied (after the schedule)."
)
class SteeredFeature:
    uid: str
    layer: int
    module: Module
    index: int
    coefficient: float
    mode: SteerMode
    unit: float = strawberry.field(
        description="Typical activation used as the strength unit (1 for RAW units, 0 for RESCALE)."
    )
    vector_norm: float = strawberry.field(
        description="Norm of the vector added at every position (ADD); 0 for RESCALE."
    )


@strawberry.type
class SteerGeneration:
    prompt: str
    baseline: str
    steered: str


@strawberry.type(
    description="Baseline and steered continuations side by side, with the exact features and coefficients applied."
)
class SteerSuccess:
    run_id: str | None
    atlas: str
    model: str
    prompts: list[str]
    baseline: list[str]
    steered: list[str]
    generations: list[SteerGeneration]
    features: list[SteeredFeature]
    l_start: int | None
    l_end: int | None
    baseline_tokens_per_second: float
    steered_tokens_per_second: float


@strawberry.type(description="The language model could not be loaded; the message says why and how to fix it.")
class ModelUnavailable:
    message: str


SteerResult = Annotated[
    SteerSuccess | FeatureNotFound | InvalidInput | ModelUnavailable, strawberry.union("SteerResult")
]


class Steerers:
    """The steerer of one API process: built on first use (the model loads with the first steer) from the
    settings the app was started with — a :class:`steering.remote.RemoteSteerer` when ``steer_worker_url`` is
    set, else an in-process :class:`steering.service.Steerer` on its own sync Neo4j client."""

    def __init__(self, api: ApiSettings, neo4j: Neo4jSettings, steering: SteeringSettings | None = None) -> None:
        self.api, self.neo4j = api, neo4j
        self.steering = steering or SteeringSettings()  # read from the environment once, at start-up
        self._steerer: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if self._steerer is None:
                if self.api.steer_worker_url:
                    from steering.remote import RemoteSteerer

                    self._steerer = RemoteSteerer(self.api.steer_worker_url, self.api.steer_worker_timeout_s)
                else:
                    from queries.db import Graph
                    from steering.service import Steerer

                    self._steerer = Steerer(Graph(self.neo4j), self.steering)
            return self._steerer


def _steerer(info: strawberry.Info) -> Any:
    """The context's steerer (tests may bring one), else the app's (:class:`Steerers`, made at start-up)."""
    ctx = info.context
    given = getattr(ctx, "steerer", None)
    if given is not None:
        return given
    steerers = getattr(ctx, "steerers", None)
    if steerers is None:
        raise qerrors.ModelUnavailable(
            "this API was started without a steering runtime (create it with atlas_api.app.create_app)"
        )
    return steerers.get()


def to_request(inp: SteerInput) -> Any:
    """Translate the GraphQL input into a :class:`steering.service.SteerRequest` (no validation beyond shapes)."""
    from steering.generate import GenerationConfig
    from steering.service import SteerRequest

    if inp.prompt is not None and inp.prompts is not None:
        raise qerrors.InvalidInput("give either prompt or prompts, not both")
    prompts = inp.prompts if inp.prompts is not None else ([inp.prompt] if inp.prompt is not None else [])
    g = inp.graph or SteerGraphInput()
    return SteerRequest(
        atlas=inp.atlas,
        prompts=list(prompts),
        seeds=[(f.uid, f.strength) for f in inp.seeds],
        features=[(f.uid, f.strength) for f in inp.features],
        mode=inp.mode,
        strategy=inp.strategy,
        layer=inp.layer,
        schedule=inp.schedule,
        alpha=inp.alpha,
        final_strength=inp.final_strength,
        units=inp.units,
        min_similarity=g.min_similarity,
        module_min_similarity=g.module_min_similarity,
        top_k=g.top_k,
        depth=g.depth,
        generation=GenerationConfig(
            max_new_tokens=inp.max_new_tokens,
            temperature=inp.temperature,
            top_p=inp.top_p,
            seed=inp.seed,
            chat=inp.chat,
        ),
        store=inp.store,
    )


def to_success(res: Any) -> SteerSuccess:
    feats = [
        SteeredFeature(
            uid=a.feature.uid,
            layer=a.feature.ref.layer,
            module=a.feature.ref.module,
            index=a.feature.ref.index,
            coefficient=a.feature.coefficient,
            mode=a.feature.mode,
            unit=a.unit,
            vector_norm=a.vector_norm,
        )
        for a in res.applied
    ]
    return SteerSuccess(
        run_id=res.run_id,
        atlas=res.atlas,
        model=res.model,
        prompts=res.prompts,
        baseline=res.baseline,
        steered=res.steered,
        generations=[
            SteerGeneration(prompt=p, baseline=b, steered=s) for p, b, s in zip(res.prompts, res.baseline, res.steered)
        ],
        features=feats,
        l_start=res.l_start,
        l_end=res.l_end,
        baseline_tokens_per_second=res.baseline_tokens_per_s,
        steered_tokens_per_second=res.steered_tokens_per_s,
    )


@strawberry.type
class SteerMutation:
    @strawberry.mutation(
        description="Generate baseline and steered text with flow-graph interventions (paper §5). Needs the API key when one is configured."
    )
    async def steer(self, info: strawberry.Info, input: SteerInput) -> SteerResult:
        try:
            req = to_request(input)
            steerer = _steerer(info)
            res = await asyncio.to_thread(steerer.steer, req)
        except qerrors.FeatureNotFound as exc:
            return FeatureNotFound(uid=exc.uid, message=str(exc))
        except qerrors.ModelUnavailable as exc:
            return ModelUnavailable(message=str(exc))
        except (qerrors.DatabaseUnavailable, qerrors.SteerBusy):
            raise  # an error with its code (the API's error handling), not a result: retry later
        except qerrors.AtlasError as exc:
            return InvalidInput(message=str(exc))
        return to_success(res)
