"""steering/wire.py: the worker's JSON form round-trips requests, results and typed errors exactly."""

from __future__ import annotations

import json

import pytest

from queries import errors as qerrors
from queries.domain import Module
from queries.ids import FeatureRef
from steering import wire
from steering.generate import GenerationConfig
from steering.interventions import AppliedFeature, Mode, Schedule, SteerFeature, Strategy, Units
from steering.service import SteerRequest, SteerResult


def test_request_round_trip() -> None:
    req = SteerRequest(
        atlas="a",
        prompts=["x", "y"],
        seeds=[("a/3-res/1", 2.5)],
        features=[("a/2-mlp/7", -1.0)],
        mode=Mode.RESCALE,
        strategy=Strategy.CUMULATIVE,
        layer=3,
        schedule=Schedule.LINEAR,
        units=Units.RAW,
        depth=4,
        generation=GenerationConfig(max_new_tokens=9, temperature=0, seed=3),
        store=False,
    )
    back = wire.request_from_json(json.loads(json.dumps(wire.request_to_json(req))))
    assert back == req


def test_result_round_trip() -> None:
    applied = [AppliedFeature(SteerFeature(FeatureRef("a", 3, Module.RES, 1), 2.5, Mode.ADD), 0.7, 1.75)]
    res = SteerResult(
        run_id=None,
        atlas="a",
        model="m",
        prompts=["x"],
        baseline=["b"],
        steered=["s"],
        applied=applied,
        l_start=1,
        l_end=3,
        baseline_tokens_per_s=10.0,
        steered_tokens_per_s=9.5,
    )
    assert wire.result_from_json(json.loads(json.dumps(wire.result_to_json(res)))) == res


@pytest.mark.parametrize(
    ("exc", "status", "cls"),
    [
        (qerrors.FeatureNotFound("a/1-res/9"), 404, qerrors.FeatureNotFound),
        (qerrors.InvalidInput("bad layer"), 400, qerrors.InvalidInput),
        (qerrors.ModelUnavailable("no model"), 503, qerrors.ModelUnavailable),
        (qerrors.SteerBusy("busy", 4.0), 429, qerrors.SteerBusy),
        (qerrors.SteerBusy("busy", 2.6), 429, qerrors.SteerBusy),  # retry_after 3: must not be rounded again to 4
        (wire.SteerTimeout("slow", 2.0), 504, wire.SteerTimeout),
    ],
)
def test_errors_keep_their_type_message_and_retry_hint(exc: qerrors.AtlasError, status: int, cls: type) -> None:
    code, body = wire.error_to_json(exc)
    back = wire.error_from_json(json.loads(json.dumps(body)))
    assert code == status and type(back) is cls and str(back) == str(exc)
    if isinstance(exc, qerrors.RateLimited):
        assert isinstance(back, qerrors.RateLimited) and back.retry_after == exc.retry_after
    if isinstance(exc, qerrors.FeatureNotFound):
        assert isinstance(back, qerrors.FeatureNotFound) and back.uid == exc.uid


def test_a_malformed_request_is_invalid_input() -> None:
    with pytest.raises(qerrors.InvalidInput, match="malformed steering request"):
        wire.request_from_json({"atlas": "a", "prompts": ["x"], "mode": "sideways"})
