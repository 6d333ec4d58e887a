"""Keys and roles, rate limits, the steering gate, body limit, CORS and introspection against the real
server (uvicorn + the real Neo4j, hand-planted atlas). Keys live in a temporary keys file."""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
import uuid
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
from tests.servers import gql, running_api

SET_LABEL = "mutation($uid: String!, $label: String) { setLabel(uid: $uid, label: $label) { __typename ... on Feature { uid label } } }"
FEATURE = '{ feature(uid: "%s") { __typename ... on Feature { uid } } }'
STEER = 'mutation { steer(input: {atlas: "%s", prompt: "hi", features: [{uid: "1/res/3", strength: 1.0}]}) { __typename ... on ModelUnavailable { message } } }'


@pytest.fixture(scope="module")
def hand(graph: Graph) -> Iterator[HandAtlas]:
    from queries.maintenance import drop_atlas

    a = HandAtlas(f"test-sec-{uuid.uuid4().hex[:8]}")
    a.write(graph)
    yield a
    drop_atlas(graph, a.name)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    store = KeyStore(tmp_path / "keys.json")
    tokens = {
        name: store.create(name, frozenset(roles))[1]
        for name, roles in {
            "reader": {Role.READ},
            "labeler": {Role.LABEL},
            "steerer": {Role.STEER},
            "admin": {Role.ADMIN},
        }.items()
    }
    return store.path, tokens


def post(base: str, query: str, variables: dict[str, Any] | None = None, key: str | None = None) -> httpx.Response:
    return httpx.post(
        f"{base}/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"X-API-Key": key} if key else {},
        timeout=30,
    )


def test_roles_open_reads_keyed_mutations_and_revocation(
    hand: HandAtlas, neo4j_settings: Any, keys: tuple[Path, dict[str, str]]
) -> None:
    path, t = keys
    uid = hand.uid(1, "res", 3)
    with running_api(ApiSettings(keys_file=path), neo4j_settings) as api:
        assert path.stat().st_mode & 0o777 == 0o600
        assert gql(api, FEATURE % uid)["data"]["feature"]["uid"] == uid  # reads open by default
        r = post(api, SET_LABEL, {"uid": uid, "label": "x"})  # mutations keyed by default
        assert r.status_code == 401 and r.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        r = post(api, SET_LABEL, {"uid": uid, "label": "x"}, key=t["reader"])
        assert (
            r.status_code == 403
            and r.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
            and "label" in r.json()["errors"][0]["message"]
        )
        r = post(api, SET_LABEL, {"uid": uid, "label": "x"}, key=t["steerer"])
        assert r.status_code == 403
        for who in ("labeler", "admin"):
            r = post(api, SET_LABEL, {"uid": uid, "label": who}, key=t[who])
            assert r.status_code == 200 and r.json()["data"]["setLabel"]["label"] == who
        r = post(api, SET_LABEL, {"uid": uid, "label": "x"}, key=t["labeler"][:-2] + "xx")  # right id, wrong secret
        assert r.status_code == 401
        assert (
            post(api, FEATURE % uid, key="fa_nope_nope").status_code == 401
        )  # a bad key is refused even where none is needed
        KeyStore(path).revoke("labeler")
        time.sleep(1.2)  # the server re-reads the keys file at most once a second
        r = post(api, SET_LABEL, {"uid": uid, "label": "x"}, key=t["labeler"])
        assert r.status_code == 401 and "revoked" in r.json()["errors"][0]["message"]


def test_keyed_reads_cover_queries_and_exports(
    hand: HandAtlas, neo4j_settings: Any, keys: tuple[Path, dict[str, str]]
) -> None:
    path, t = keys
    uid = hand.uid(1, "res", 3)
    with running_api(ApiSettings(keys_file=path, reads="keyed"), neo4j_settings) as api:
        r = post(api, FEATURE % uid)
        assert r.status_code == 401 and r.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        for who in ("reader", "labeler", "steerer", "admin"):  # every role may read
            assert post(api, FEATURE % uid, key=t[who]).json()["data"]["feature"]["uid"] == uid
        assert httpx.get(f"{api}/export/lineage", params={"uid": uid}).status_code == 401
        assert (
            httpx.get(f"{api}/export/lineage", params={"uid": uid}, headers={"X-API-Key": t["reader"]}).status_code
            == 200
        )


def test_open_mutations_setting(hand: HandAtlas, neo4j_settings: Any, keys: tuple[Path, dict[str, str]]) -> None:
    path, _ = keys
    with running_api(ApiSettings(keys_file=path, mutations="open"), neo4j_settings) as api:
        r = post(api, SET_LABEL, {"uid": hand.uid(1, "res", 3), "label": "open"})
        assert r.status_code == 200 and r.json()["data"]["setLabel"]["label"] == "open"


def test_per_key_rate_limit_gives_retry_hint(
    hand: HandAtlas, neo4j_settings: Any, keys: tuple[Path, dict[str, str]]
) -> None:
    path, t = keys
    uid = hand.uid(1, "res", 3)
    with running_api(
        ApiSettings(keys_file=path, rate_limit_per_minute=12), neo4j_settings
    ) as api:  # bursts of 2, one more each 5 s
        codes = [post(api, FEATURE % uid, key=t["reader"]).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        r = post(api, FEATURE % uid, key=t["reader"])
        err = r.json()["errors"][0]
        assert (
            err["extensions"]["code"] == "RATE_LIMITED"
            and err["extensions"]["retryAfter"] >= 1
            and int(r.headers["retry-after"]) >= 1
        )
        assert post(api, FEATURE % uid, key=t["admin"]).status_code == 200  # buckets are per key
        assert (
            post(api, FEATURE % uid).status_code == 200
        )  # anonymous reads: no limit unless anon_rate_limit_per_minute


class SlowSteerer:
    """Stands in for the model (what is tested here is the gate in front of it): takes 1 s, then fails typed."""

    def __init__(self) -> None:
        self.calls = 0

    def steer(self, req: Any) -> Any:
        self.calls += 1
        time.sleep(1.0)
        raise ModelUnavailable("no model in this test")


def test_steer_concurrency_cap_queue_then_typed_busy(
    hand: HandAtlas, neo4j_settings: Any, keys: tuple[Path, dict[str, str]]
) -> None:
    path, t = keys
    slow = SlowSteerer()
    settings = ApiSettings(keys_file=path, steer_concurrency=1, steer_queue=1, steer_rate_limit_per_minute=600)
    with running_api(settings, neo4j_settings, steerer=slow) as api:
        assert post(api, STEER % hand.name, key=t["labeler"]).status_code == 403
        with cf.ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(post, api, STEER % hand.name, None, t["steerer"]) for _ in range(4)]
            results = [f.result() for f in futures]
        ok = [r for r in results if r.status_code == 200]
        busy = [r for r in results if r.status_code == 429]
        assert len(ok) == 2 and len(busy) == 2, [r.text for r in results]  # one runs, one waits, the rest are refused
        assert all(r.json()["data"]["steer"]["__typename"] == "ModelUnavailable" for r in ok)
        err = busy[0].json()["errors"][0]
        assert (
            err["extensions"]["code"] == "STEER_BUSY"
            and err["extensions"]["retryAfter"] >= 1
            and busy[0].headers["retry-after"]
        )
        assert slow.calls == 2
        r = post(api, STEER % hand.name, key=t["admin"])  # the gate is free again
        assert r.status_code == 200 and r.json()["data"]["steer"]["__typename"] == "ModelUnavailable"
        two = 'mutation { a: steer(input: {atlas: "x", prompt: "hi"}) { __typename } b: steer(input: {atlas: "x", prompt: "hi"}) { __typename } }'
        assert post(api, two, key=t["steerer"]).json()["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    with running_api(
        ApiSettings(keys_file=path, steer_rate_limit_per_minute=6), neo4j_settings, steerer=SlowSteerer()
    ) as api:
        codes = [post(api, STEER % hand.name, key=t["steerer"]).status_code for _ in range(2)]
        assert codes == [200, 429]  # steering has its own, smaller per-key budget (bursts of 1 here)


class HeldSteerer:
    """Stands in for the model: holds its request (and so its admission slot) until released, then fails typed."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def steer(self, req: Any) -> Any:
        self.started.set()
        self.release.wait(20)
        raise ModelUnavailable("no model in this test")


def test_admission_refuses_typed_overloaded_after_the_queue_timeout(
    hand: HandAtlas, neo4j_settings: Any, keys: tuple[Path, dict[str, str]]
) -> None:
    path, t = keys
    uid = hand.uid(1, "res", 3)
    held = HeldSteerer()
    settings = ApiSettings(keys_file=path, max_concurrent_requests=1, request_queue_timeout_s=0.3)
    with running_api(settings, neo4j_settings, steerer=held) as api, cf.ThreadPoolExecutor(1) as pool:
        steering = pool.submit(post, api, STEER % hand.name, None, t["steerer"])
        assert held.started.wait(20)  # the steer request now holds the only slot
        r = post(api, FEATURE % uid)
        err = r.json()["errors"][0]
        assert r.status_code == 503 and err["extensions"]["code"] == "OVERLOADED", r.text
        assert err["extensions"]["retryAfter"] >= 1 and int(r.headers["retry-after"]) >= 1
        assert "at capacity" in err["message"] and r.json()["data"] is None
        held.release.set()
        assert steering.result(20).status_code == 200
        assert gql(api, FEATURE % uid)["data"]["feature"]["uid"] == uid  # the slot was given back


def test_body_limit_cors_closed_and_introspection_off(neo4j_settings: Any, keys: tuple[Path, dict[str, str]]) -> None:
    path, _ = keys
    with running_api(ApiSettings(keys_file=path, max_body_bytes=2_048, introspection=False), neo4j_settings) as api:
        big = {"query": "{ atlases { name } }", "variables": {"pad": "x" * 5_000}}
        r = httpx.post(f"{api}/graphql", json=big)
        assert r.status_code == 413 and r.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
            yield b'{"query": "{ atlases { name } }", "variables": {"pad": "'
            for _ in range(10):
                yield b"x" * 1_000
            yield b'"}}'

        r = httpx.post(f"{api}/graphql", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413
        small = httpx.post(
            f"{api}/graphql",
            content=iter([b'{"query": "{ atlases { name } }"}']),
            headers={"content-type": "application/json"},
        )
        assert small.status_code == 200 and "errors" not in small.json()
        out = gql(api, "{ __schema { types { name } } }")
        assert "introspection" in out["errors"][0]["message"].lower()
        assert (
            httpx.get(f"{api}/graphql", headers={"accept": "text/html"}).status_code != 200
            or "graphiql" not in httpx.get(f"{api}/graphql", headers={"accept": "text/html"}).text.lower()
        )
        pre = httpx.options(
            f"{api}/graphql", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        )
        assert "access-control-allow-origin" not in pre.headers  # CORS closed by default
        r = httpx.post(
            f"{api}/graphql", json={"query": "{ atlases { name } }"}, headers={"Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in r.headers
