"""Schemathesis fuzzing of the live GraphQL API on a hand-planted atlas: every query and mutation of the SDL
snapshot, generated arguments (half of the uid/atlas strings swapped for real ones so resolvers get past
"not found"), sent over HTTP to the real server and Neo4j. No response may be a 5xx or carry the code INTERNAL.

CI runs a short seeded variant (ATLAS_FUZZ_CASES, default 320 cases); bench/fuzz_api.py runs thousands and
writes bench/results/fuzz_api.json from the report this test leaves at ATLAS_FUZZ_REPORT.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from atlas_api.keys import KeyStore, Role
from atlas_api.settings import ApiSettings
from queries.db import Graph
from queries.errors import ModelUnavailable
from tests.hand_atlas import HandAtlas
from tests.servers import running_api

SDL = Path(__file__).resolve().parents[1] / "unit" / "api" / "snapshots" / "schema.graphql"
CASES = int(os.environ.get("ATLAS_FUZZ_CASES", "320"))
SEED = int(os.environ.get("ATLAS_FUZZ_SEED", "12"))
_STRING_ARG = re.compile(r'\b(uid|from|to|atlas|name|uids|text)\s*:\s*"((?:[^"\\]|\\.)*)"')


class NoModel:
    """steer's resolver runs for real up to the model, which a CI machine does not load for fuzzing."""

    def steer(self, req: Any) -> Any:
        raise ModelUnavailable("no model while fuzzing")


@pytest.fixture(scope="module")
def hand(graph: Graph) -> Iterator[HandAtlas]:
    from queries.maintenance import drop_atlas

    a = HandAtlas(f"test-fuzz-{uuid.uuid4().hex[:8]}")
    a.write(graph)
    yield a
    drop_atlas(graph, a.name)


def _realistic(body: str, rng: random.Random, atlas: HandAtlas) -> str:
    """Swap about half of the generated uid/atlas strings for planted ones (a fixed rng: reproducible)."""
    uids = [atlas.uid(layer, m, i) for layer in (1, 2, 3) for m in ("res", "att", "mlp") for i in range(4)]

    def swap(m: re.Match[str]) -> str:
        if rng.random() < 0.5:
            return m.group(0)
        value = (
            atlas.name if m.group(1) in ("atlas", "name") else ("zebra" if m.group(1) == "text" else rng.choice(uids))
        )
        return f'{m.group(1)}: "{value}"'

    return _STRING_ARG.sub(swap, body)


def test_fuzz_graphql_no_server_errors(hand: HandAtlas, neo4j_settings: Any, tmp_path: Path) -> None:
    import schemathesis.graphql
    from hypothesis import HealthCheck, given, seed, settings

    store = KeyStore(tmp_path / "keys.json")
    _, admin = store.create("fuzz", frozenset({Role.ADMIN}))
    schema = schemathesis.graphql.from_path(SDL)
    ops = [o.ok() for o in schema.get_all_operations()]
    per_op = max(5, CASES // len(ops))
    rng = random.Random(SEED)
    statuses: Counter[int] = Counter()
    codes: Counter[str] = Counter()
    failures: list[dict[str, Any]] = []
    sent = 0
    t0 = time.monotonic()
    api_settings = ApiSettings(
        keys_file=store.path, rate_limit_per_minute=0, steer_rate_limit_per_minute=0, query_timeout_s=10
    )
    with running_api(api_settings, neo4j_settings, steerer=NoModel()) as api, httpx.Client(timeout=60) as client:

        def runner(op: Any) -> Any:
            @seed(SEED)
            @settings(max_examples=per_op, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy())
            def run(case: Any) -> None:
                nonlocal sent
                body = _realistic(str(case.body), rng, hand)
                r = client.post(f"{api}/graphql", json={"query": body}, headers={"X-API-Key": admin})
                sent += 1
                statuses[r.status_code] += 1
                try:
                    errors = r.json().get("errors") or []
                except ValueError:
                    errors = [{"extensions": {"code": "NOT_JSON"}}]
                for e in errors:
                    codes[str((e.get("extensions") or {}).get("code", "VALIDATION"))] += 1
                if r.status_code >= 500 or any(
                    (e.get("extensions") or {}).get("code") in ("INTERNAL", "NOT_JSON") for e in errors
                ):
                    failures.append(
                        {"operation": op.label, "status": r.status_code, "query": body, "response": r.text[:500]}
                    )

            return run

        for op in ops:
            runner(op)()
    report = {
        "cases": sent,
        "seed": SEED,
        "operations": len(ops),
        "server_errors": len(failures),
        "seconds": round(time.monotonic() - t0, 1),
        "statuses": dict(statuses),
        "error_codes": dict(codes.most_common()),
        "failures": failures[:20],
    }
    if os.environ.get("ATLAS_FUZZ_REPORT"):
        Path(os.environ["ATLAS_FUZZ_REPORT"]).write_text(json.dumps(report, indent=1))
    assert sent >= min(CASES, len(ops) * 5) * 0.5, (
        report
    )  # hypothesis may stop early on small search spaces, not this early
    assert not failures, json.dumps(failures[:3], indent=1)
