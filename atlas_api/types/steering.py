"""A stored steer run (SteeringRun node) as the API returns it."""

from __future__ import annotations

from typing import Any

import strawberry


@strawberry.type
class SteeringRunFeature:
    uid: str
    coefficient: float | None
    mode: str | None


@strawberry.type(
    description="A stored steer run (SteeringRun node): its request, texts and the features it used with their coefficients."
)
class SteeringRun:
    id: str
    atlas: str
    created_at: str | None
    model: str | None
    strategy: str | None
    schedule: str | None
    mode: str | None
    prompts: list[str]
    baseline: list[str]
    steered: list[str]
    seeds: list[str]
    seed_strengths: list[float]
    features: list[SteeringRunFeature]

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> SteeringRun:
        return cls(
            id=r["id"],
            atlas=r["atlas"],
            created_at=r.get("created_at"),
            model=r.get("model"),
            strategy=r.get("strategy"),
            schedule=r.get("schedule"),
            mode=r.get("mode"),
            prompts=list(r.get("prompts") or []),
            baseline=list(r.get("baseline") or []),
            steered=list(r.get("steered") or []),
            seeds=list(r.get("seeds") or []),
            seed_strengths=[float(x) for x in r.get("seed_strengths") or []],
            features=[
                SteeringRunFeature(uid=u["uid"], coefficient=u.get("coefficient"), mode=u.get("mode"))
                for u in r.get("used") or []
            ],
        )
