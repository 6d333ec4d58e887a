"""Interventions (paper §5.1) compiled into one tensor operation per hook point.

- **Additive** ``h += s·u·d`` at every position, where ``d`` is the feature's decoder row and ``u`` its
  strength unit: the feature's typical activation (``units="activation"``, default) or 1 (``"raw"``).
  All additive features of a hook point sum into ONE vector, so 100 features cost one add per hook.
- **Rescaling** ``h += (r−1)·a·d`` with ``a`` the feature's SAE activation encoded on the fly from the
  current ``h``; ``r = 0`` removes the feature's term ``a·d`` from the SAE reconstruction. The selected
  features of a hook point are encoded with one ``[d, n]`` matmul and written back with one ``[n, d]``.

Selection (strategies) and coefficients (schedules) are pure functions here too:
``schedule_coefficient`` and ``select_from_graph`` (seeds only / single layer / cumulative).

Invariants: a compiled :class:`SteeringPlan` is immutable and holds tensors on the model's device/dtype;
applying it is a context manager that always removes its hooks; rescaling reads ``h`` before any
additive change at the same point.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from queries.errors import InvalidInput
from queries.ids import FeatureRef, Module
from steering.hooks import HookPoint, edit

if TYPE_CHECKING:
    import torch

    from queries.flow_graph import FlowGraph
    from steering.model import LoadedModel
    from steering.saes import SAEBank

# Bounds that keep a request from producing NaNs or burning the machine (absurd values are errors).
MAX_ABS_STRENGTH = 1_000.0
MAX_FEATURES = 5_000


class Mode(str, Enum):
    ADD = "add"
    RESCALE = "rescale"


class Strategy(str, Enum):
    SEEDS = "seeds"  # the paper's baseline: the seed features only
    SINGLE = "single"  # the graph's features at one layer l
    CUMULATIVE = "cumulative"  # the graph's features at every layer from l_start up to l


class Schedule(str, Enum):
    CONSTANT = "constant"
    EXPONENTIAL = "exponential"
    LINEAR = "linear"


class Units(str, Enum):
    ACTIVATION = "activation"  # s = multiples of the feature's typical activation (default)
    RAW = "raw"  # s multiplies the decoder row as stored (SAE activation units)
    THRESHOLD = "threshold"  # s = multiples of the feature's JumpReLU threshold θ (the paper's folded decoder V = θ·d)
    # s = α, the steering benchmark's axis: the added vector's per-token norm is α × the median ‖h‖ at the hook
    # (steering.saes.SAEBank.median_norm), one scale for every feature, SAE and method
    ALPHA = "alpha"


DEFAULT_ALPHA = -0.05
DEFAULT_FINAL_STRENGTH = 1.0


@dataclass(frozen=True)
class SteerFeature:
    """One feature to steer and its coefficient (a strength for ADD, a factor r for RESCALE)."""

    ref: FeatureRef
    coefficient: float
    mode: Mode = Mode.ADD

    @property
    def point(self) -> HookPoint:
        return HookPoint(self.ref.layer, self.ref.module)

    @property
    def uid(self) -> str:
        return self.ref.uid


def check_strength(value: float, what: str = "strength") -> float:
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not math.isfinite(value)
        or abs(value) > MAX_ABS_STRENGTH
    ):
        raise InvalidInput(
            f"{what} {value!r} is not valid (use a finite number with |value| ≤ {MAX_ABS_STRENGTH:g}; typical strengths are 1–10)"
        )
    return float(value)


def schedule_coefficient(
    schedule: Schedule,
    s: float,
    layer: int,
    l_start: int,
    l_end: int,
    *,
    alpha: float = DEFAULT_ALPHA,
    final: float = DEFAULT_FINAL_STRENGTH,
) -> float:
    """The coefficient at ``layer`` of a cumulative intervention whose span is ``[l_start, l_end]``.

    constant: ``s``; exponential: ``s·e^{α(l − l_start)}`` (our reading: layers counted from the span's
    start, so the first layer gets ``s``); linear: ``k·l + b`` with ``k = (s* − s)/(l_end − l_start)``,
    ``b = s − k·l_start`` (``s`` at l_start, ``s* = final`` at l_end; a one-layer span gives ``s``).
    """
    if schedule is Schedule.CONSTANT:
        return s
    if schedule is Schedule.EXPONENTIAL:
        return s * math.exp(alpha * (layer - l_start))
    if l_end == l_start:
        return s
    k = (final - s) / (l_end - l_start)
    return k * layer + (s - k * l_start)


def select_from_graph(
    graph: FlowGraph,
    strategy: Strategy,
    strength: float,
    *,
    layer: int | None = None,
    schedule: Schedule = Schedule.CONSTANT,
    alpha: float = DEFAULT_ALPHA,
    final: float = DEFAULT_FINAL_STRENGTH,
    mode: Mode = Mode.ADD,
) -> list[SteerFeature]:
    """The features of one seed's flow graph a strategy steers, with their coefficients.

    ``layer`` is the paper's ``l``: for SINGLE the layer whose features are steered (default: the seed's
    layer), for CUMULATIVE the last layer (default: ``l_end``); CUMULATIVE starts at ``l_start``.
    Schedules apply to CUMULATIVE; SEEDS and SINGLE use ``strength`` as is.
    """
    nodes = graph.nodes
    seeds = [n for n in nodes if n.uid in set(graph.seeds)]
    if strategy is Strategy.SEEDS:
        chosen = [(n, strength) for n in seeds]
    else:
        layers = sorted({n.layer for n in nodes})
        l_start = graph.l_start if graph.l_start is not None else layers[0]
        l_end = graph.l_end if graph.l_end is not None else layers[-1]
        if strategy is Strategy.SINGLE:
            target = layer if layer is not None else (seeds[0].layer if seeds else l_end)
            chosen = [(n, strength) for n in nodes if n.layer == target]
        else:
            last = layer if layer is not None else l_end
            chosen = [
                (n, schedule_coefficient(schedule, strength, n.layer, l_start, l_end, alpha=alpha, final=final))
                for n in nodes
                if l_start <= n.layer <= last
            ]
    return [SteerFeature(n.ref, c, mode) for n, c in chosen]


def merge_features(features: Iterable[SteerFeature]) -> list[SteerFeature]:
    """One entry per (uid, mode): when several seeds' graphs share a feature, the largest |coefficient| wins
    (summing would let overlapping graphs multiply a feature's strength). Order: layer, module, index."""
    best: dict[tuple[str, Mode], SteerFeature] = {}
    for f in features:
        key = (f.uid, f.mode)
        if key not in best or abs(f.coefficient) > abs(best[key].coefficient):
            best[key] = f
    order = {Module.ATT: 0, Module.MLP: 1, Module.RES: 2}
    return sorted(best.values(), key=lambda f: (f.ref.layer, order[f.ref.module], f.ref.index, f.mode.value))


@dataclass
class PointOp:
    """Everything applied at one hook point: one additive vector and one batched rescale."""

    add: torch.Tensor | None = None  # [d]
    enc: dict[str, Any] | None = None  # encoder slice for the rescaled features
    factor: torch.Tensor | None = None  # [n] = r − 1
    dec: torch.Tensor | None = None  # [n, d]
    hook: str | None = None  # where it applies when not the point itself (hook_z SAEs: blocks.L.attn.hook_z)

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        from saes.weights import output_scale
        from steering.saes import encode_selected

        out = h
        if self.enc is not None:
            a = encode_selected(h, self.enc)  # [..., n]
            # a feature's term in the reconstruction is a·d in SAE space, times the per-token normalisation factor
            out = out + (a * self.factor) @ self.dec * output_scale(h, self.enc.get("normalize", "none"), h.shape[-1])
        if self.add is not None:
            out = out + self.add
        return out


@dataclass
class AppliedFeature:
    """What was applied for one feature: the coefficient, its unit and the norm of the added vector."""

    feature: SteerFeature
    unit: float  # typical activation (ADD, units=activation), 1 (raw) or 0 (rescale: unitless)
    vector_norm: float  # ‖s·u·d‖ for ADD; 0 for RESCALE (depends on the activation)


@dataclass
class SteeringPlan:
    ops: dict[HookPoint, PointOp] = field(default_factory=dict)
    applied: list[AppliedFeature] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.ops

    @contextlib.contextmanager
    def apply(self, lm: LoadedModel) -> Iterator[None]:
        """Install the plan's hooks for the duration of the block (hold ``lm.lock`` around it)."""
        edits: dict[HookPoint | str, Any] = {}
        for point, op in self.ops.items():
            if op.hook is None:
                edits[point] = op
            elif op.hook.endswith("attn.hook_z"):  # the op works on the flattened per-head vector
                edits[op.hook] = lambda z, op=op: op(z.flatten(-2)).view_as(z)
            else:  # the SAE's own d_model hook (e.g. hook_resid_pre)
                edits[op.hook] = op
        with edit(lm, edits):
            yield


def compile_plan(features: Sequence[SteerFeature], bank: SAEBank, *, units: Units = Units.ACTIVATION) -> SteeringPlan:
    """Group features per hook point into tensors. Raises InvalidInput for indices out of range."""
    import torch

    if len(features) > MAX_FEATURES:
        raise InvalidInput(
            f"{len(features)} features requested; at most {MAX_FEATURES} can be steered at once (use a tighter graph cut)"
        )
    for f in features:
        # Input strengths were checked where they were parsed; this bounds the coefficients schedules derive from them.
        check_strength(f.coefficient, "strength" if f.mode is Mode.ADD else "rescale factor r")
        if f.ref.atlas != bank.atlas:
            raise InvalidInput(
                f"feature {f.uid!r} belongs to atlas {f.ref.atlas!r}, not {bank.atlas!r} (steer with features of one atlas)"
            )
    plan = SteeringPlan()
    by_point: dict[HookPoint, list[SteerFeature]] = {}
    for f in features:
        by_point.setdefault(f.point, []).append(f)
    for point in sorted(by_point):
        group = by_point[point]
        sae = bank.get(point)
        sae.check_indices([f.ref.index for f in group], bank.atlas)
        op = PointOp()
        adds = [f for f in group if f.mode is Mode.ADD]
        if adds:
            idx = torch.tensor([f.ref.index for f in adds], device=sae.W_dec.device)
            coef = torch.tensor([f.coefficient for f in adds], dtype=sae.W_dec.dtype, device=sae.W_dec.device)
            if units is Units.ACTIVATION:
                unit = bank.typical_activation(point)[idx]
            elif units is Units.THRESHOLD:
                if sae.threshold is None:
                    raise InvalidInput(
                        f"units THRESHOLD need a JumpReLU SAE, but SAE {bank.atlas}/{point} is {sae.architecture!r} "
                        "without a threshold θ (use units ACTIVATION or RAW)"
                    )
                unit = sae.threshold[idx]
            elif units is Units.ALPHA:
                unit = bank.median_norm(point) / sae.W_dec[idx].norm(dim=-1).clamp(min=1e-8)
            else:
                unit = torch.ones_like(coef)
            rows = sae.W_dec[idx] * (coef * unit)[:, None]  # [n, d]: each feature's added vector
            op.add = rows.sum(0)
            norms = rows.norm(dim=-1)
            for f, u, nrm in zip(adds, unit.tolist(), norms.tolist()):
                plan.applied.append(AppliedFeature(f, float(u), float(nrm)))
        rescales = [f for f in group if f.mode is Mode.RESCALE]
        if rescales and sae.input_hook is not None:
            raise InvalidInput(
                f"feature {rescales[0].uid!r} belongs to a transcoder, whose activation is computed from the MLP input "
                f"({sae.input_hook}), not from {point}; steer transcoder features with mode ADD"
            )
        if rescales:
            idx = torch.tensor([f.ref.index for f in rescales], device=sae.W_dec.device)
            op.enc = sae.encoder_slice(idx)
            op.factor = torch.tensor(
                [f.coefficient - 1.0 for f in rescales], dtype=sae.W_dec.dtype, device=sae.W_dec.device
            )
            op.dec = sae.W_dec[idx].contiguous()
            plan.applied.extend(AppliedFeature(f, 0.0, 0.0) for f in rescales)
        op.hook = sae.edit_hook
        plan.ops[point] = op
    return plan
