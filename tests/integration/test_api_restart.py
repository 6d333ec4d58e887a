"""The API keeps serving while Neo4j restarts under it, and recovers by itself.

Uses its OWN Neo4j server (atlas_cli.local_neo4j, temporary home, free port) — never the shared one.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from atlas_api.settings import ApiSettings
from atlas_cli import local_neo4j
from queries.db import Graph
from queries.schema import ensure_schema
from queries.settings import Neo4jSettings
from tests.hand_atlas import HandAtlas
from tests.servers import gql, private_neo4j, running_api

Q = '{ feature(uid: "%s") { __typename ... on Feature { uid category } } }'


def test_api_survives_and_recovers_from_a_neo4j_restart(
    tmp_path: Path, graph: Graph
) -> None:  # graph: skip/fail like the others when no Neo4j setup exists
    with private_neo4j(tmp_path / "neo4j", pagecache="64m") as s:  # our own server: this test stops and restarts it
        neo = Neo4jSettings(uri=s.bolt_uri, password=s.password, connect_timeout_s=2.0)
        with Graph(neo) as g:
            ensure_schema(g)
            atlas = HandAtlas("restart-test")
            atlas.write(g)
        uid = atlas.uid(3, "res", 1)
        with running_api(ApiSettings(query_timeout_s=5), neo) as api:
            assert gql(api, Q % uid)["data"]["feature"] == {"__typename": "Feature", "uid": uid, "category": "NEWBORN"}

            local_neo4j.stop(s)
            t0 = time.monotonic()
            out = gql(api, Q % uid)
            assert time.monotonic() - t0 < 20, "a request during the outage must fail fast, not hang"
            assert out["errors"][0]["extensions"]["code"] == "DATABASE_UNAVAILABLE"
            assert "unreachable" in out["errors"][0]["message"]
            assert httpx.get(f"{api}/healthz").status_code == 200
            assert httpx.get(f"{api}/readyz", timeout=30).status_code == 503

            local_neo4j.start(s)
            deadline, last = time.monotonic() + 60, None
            while time.monotonic() < deadline:
                last = gql(api, Q % uid)
                if "errors" not in last:
                    break
                time.sleep(0.5)
            assert last is not None and last.get("data", {}).get("feature", {}).get("uid") == uid, last
            assert httpx.get(f"{api}/readyz").status_code == 200
