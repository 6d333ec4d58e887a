"""JSON form of :class:`SteerRequest`, :class:`SteerResult` and steering errors, for the steering worker's HTTP API.

One home for the encoding so the worker (``steering.worker``) and the API's client (``steering.remote``) cannot
drift: both sides round-trip through these functions, and the tests check the round trip.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from queries import errors as qerrors
from queries.domain import Module
from queries.ids import FeatureRef
from steering.generate import GenerationConfig
from steering.interventions import AppliedFeature, Mode, Schedule, SteerFeature, Strategy, Units
from steering.service import SteerRequest, SteerResult


def request_to_json(req: SteerRequest) -> dict[str, Any]:
    d = dataclasses.asdict(req)
    for key in ("mode", "strategy", "schedule", "units"):
        d[key] = getattr(req, key).value
    return d


def request_from_json(d: dict[str, Any]) -> SteerRequest:
    try:
        return SteerRequest(
            **{
                **d,
                "seeds": [(str(u), float(s)) for u, s in d.get("seeds", [])],
                "features": [(str(u), float(s)) for u, s in d.get("features", [])],
                "mode": Mode(d.get("mode", "add")),
                "strategy": Strategy(d.get("strategy", "seeds")),
                "schedule": Schedule(d.get("schedule", "constant")),
                "units": Units(d.get("units", "activation")),
                "generation": GenerationConfig(**d.get("generation", {})),
            }
        )
    except (TypeError, ValueError) as exc:
        raise qerrors.InvalidInput(
            f"malformed steering request ({exc}); send the JSON form of steering.service.SteerRequest"
        ) from None


def result_to_json(res: SteerResult) -> dict[str, Any]:
    d = dataclasses.asdict(res)
    d["applied"] = [
        {
            "atlas": a.feature.ref.atlas,
            "layer": a.feature.ref.layer,
            "module": a.feature.ref.module.value,
            "index": a.feature.ref.index,
            "coefficient": a.feature.coefficient,
            "mode": a.feature.mode.value,
            "unit": a.unit,
            "vector_norm": a.vector_norm,
        }
        for a in res.applied
    ]
    return d


def result_from_json(d: dict[str, Any]) -> SteerResult:
    applied = [
        AppliedFeature(
            SteerFeature(
                FeatureRef(a["atlas"], int(a["layer"]), Module(a["module"]), int(a["index"])),
                float(a["coefficient"]),
                Mode(a["mode"]),
            ),
            float(a["unit"]),
            float(a["vector_norm"]),
        )
        for a in d["applied"]
    ]
    return SteerResult(**{**d, "applied": applied})


# Errors: (class name on the wire) -> HTTP status. Anything not listed is an AtlasError (400).
STATUS = {
    "FeatureNotFound": 404,
    "AtlasNotFound": 404,
    "InvalidInput": 400,
    "SteerBusy": 429,
    "SteerTimeout": 504,
    "ModelUnavailable": 503,
    "DatabaseUnavailable": 503,
}


class SteerTimeout(qerrors.SteerBusy):
    """A steering request ran past the worker's per-request timeout (the worker stays busy until it ends)."""


def error_to_json(exc: qerrors.AtlasError) -> tuple[int, dict[str, Any]]:
    name = (
        type(exc).__name__
        if type(exc).__name__ in STATUS
        else "InvalidInput"
        if isinstance(exc, qerrors.InvalidInput)
        else "AtlasError"
    )
    body: dict[str, Any] = {"error": name, "message": str(exc)}
    if isinstance(exc, qerrors.FeatureNotFound):
        body["uid"] = exc.uid
    if isinstance(exc, qerrors.RateLimited):
        body["retry_after"] = exc.retry_after
    return STATUS.get(name, 400), body


def error_from_json(body: dict[str, Any]) -> qerrors.AtlasError:
    """The same AtlasError subclass the in-process steerer would have raised (message as the worker wrote it)."""
    name, message = body.get("error"), str(body.get("message", "steering failed"))
    if name == "FeatureNotFound":
        return qerrors.FeatureNotFound(str(body.get("uid", "")), message)
    if name in ("SteerBusy", "SteerTimeout"):
        busy = (SteerTimeout if name == "SteerTimeout" else qerrors.SteerBusy)("x", 1.0)
        busy.args = (message,)  # the worker's message already ends with the retry hint
        busy.retry_after = int(
            body.get("retry_after", 1)
        )  # as the worker computed it (the constructor would round again)
        return busy
    cls = {
        "InvalidInput": qerrors.InvalidInput,
        "AtlasNotFound": qerrors.NotFound,
        "ModelUnavailable": qerrors.ModelUnavailable,
        "DatabaseUnavailable": qerrors.DatabaseUnavailable,
    }.get(str(name), qerrors.AtlasError)
    return cls(message)
