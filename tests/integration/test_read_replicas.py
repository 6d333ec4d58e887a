"""Read scale-out on loopback: two Community servers loaded from one dump, the API reading from both.

Uses its OWN two Neo4j servers (temporary homes, free ports) — never the shared one: server A gets a planted
atlas, is stopped and dumped (`atlas db dump`), the dump is loaded into B (`atlas db load`), both start.
Then: the same answers from either; a server holding another version of the atlas is refused; B killed
with SIGKILL under 10 clients costs no failed request (reads retry on A).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from atlas_api.settings import ApiSettings
from atlas_cli import local_neo4j
from queries.db import Graph
from queries.errors import AtlasError
from queries.replicas import ReplicatedAsyncGraph
from queries.schema import ensure_schema
from queries.settings import Neo4jSettings
from tests.hand_atlas import HandAtlas
from tests.servers import free_port, running_api

FEATURE = '{ feature(uid: "%s") { __typename ... on Feature { uid category sRes } } }'
LINEAGE = '{ lineage(uid: "%s", depth: 4, minSimilarity: 0.3) { nodes { uid } edges { source target similarity } } }'


def _server(root: Path, name: str) -> local_neo4j.LocalNeo4jSettings:
    # Replicas share credentials (the API reads every server with the primary's password), so both get one chosen here.
    return local_neo4j.LocalNeo4jSettings(
        home=root / name, bolt_port=free_port(), heap="384m", pagecache="32m", password="replica-test"
    )


@pytest.fixture(scope="module")
def two_servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[local_neo4j.LocalNeo4jSettings, local_neo4j.LocalNeo4jSettings, HandAtlas]]:
    root = tmp_path_factory.mktemp("replicas")
    a, b = _server(root, "a"), _server(root, "b")
    atlas = HandAtlas("replica-test")
    try:
        local_neo4j.start(a)
        with Graph(Neo4jSettings(uri=a.bolt_uri, password=a.password)) as g:
            ensure_schema(g)
            atlas.write(g)
            g.write(
                "MATCH (x:Atlas {name: $n}) SET x.manifest_sha256 = 'sha-of-v1', x.complete = true", {"n": atlas.name}
            )
        local_neo4j.stop(a)
        local_neo4j.dump(a, root / "dump")
        local_neo4j.load(b, root / "dump")
        with ThreadPoolExecutor(2) as pool:  # both JVMs start side by side (half the fixture's wait)
            list(pool.map(local_neo4j.start, (a, b)))
    except AtlasError as exc:
        for s in (a, b):
            local_neo4j.stop(s)
        pytest.fail(f"could not set up two private Neo4j servers: {exc}")
    yield a, b, atlas
    for s in (a, b):
        local_neo4j.stop(s)


def _neo(a: local_neo4j.LocalNeo4jSettings, b: local_neo4j.LocalNeo4jSettings) -> Neo4jSettings:
    return Neo4jSettings(
        uri=a.bolt_uri, password=a.password, read_uris=f"{a.bolt_uri},{b.bolt_uri}", connect_timeout_s=2.0
    )


def test_same_answers_from_either_server(two_servers) -> None:
    a, b, atlas = two_servers
    answers = []
    for s in (a, b):
        with Graph(Neo4jSettings(uri=s.bolt_uri, password=s.password)) as g:
            answers.append(
                g.read(
                    "MATCH (x:Feature {atlas: $n})-[r:FLOWS_TO]->(y) RETURN x.uid AS s, y.uid AS t, r.similarity AS sim ORDER BY s, t",
                    {"n": atlas.name},
                )
            )
    assert answers[0] and answers[0] == answers[1]
    uid = atlas.uid(5, "res", 1)
    with running_api(ApiSettings(query_timeout_s=30), _neo(a, b)) as api, httpx.Client(timeout=60) as client:
        bodies = {
            json.dumps(client.post(f"{api}/graphql", json={"query": q % uid}).json(), sort_keys=True)
            for q in (FEATURE, LINEAGE)
            for _ in range(4)
        }
        ready = client.get(f"{api}/readyz").json()
    assert len(bodies) == 2 and all(
        '"errors"' not in x for x in bodies
    )  # one answer per query, whichever server read it
    assert [s["state"] for s in ready["read_servers"]] == ["serving", "serving"]
    assert all(s["reads"] > 0 for s in ready["read_servers"]), ready  # reads were spread over both


async def test_a_server_holding_another_atlas_version_is_refused(two_servers) -> None:
    a, b, atlas = two_servers
    with Graph(Neo4jSettings(uri=b.bolt_uri, password=b.password)) as g:
        g.write("MATCH (x:Atlas {name: $n}) SET x.manifest_sha256 = 'sha-of-v2'", {"n": atlas.name})
        try:
            graph = ReplicatedAsyncGraph(_neo(a, b), [a.bolt_uri, b.bolt_uri])
            try:
                await graph.verify()
                assert graph.usable() == [a.bolt_uri]
                problem = graph.status()[1]["problem"]
                assert graph.status()[1]["state"] == "refused"
                assert (
                    f"read server {b.bolt_uri} holds different atlases" in problem
                    and "replica-test: sha256 sha-of-v2" in problem
                )
                for _ in range(4):
                    await graph.read("RETURN 1 AS ok")
                assert graph.replicas[1].reads == 0
            finally:
                await graph.close()
        finally:
            g.write("MATCH (x:Atlas {name: $n}) SET x.manifest_sha256 = 'sha-of-v1'", {"n": atlas.name})


def test_a_routing_uri_in_read_uris_is_one_clear_error() -> None:
    with pytest.raises(AtlasError, match="routing neo4j:// URI routes reads by itself"):
        ReplicatedAsyncGraph(Neo4jSettings(), ["neo4j://cluster:7687"])


def test_a_dump_from_another_major_version_is_refused(tmp_path: Path) -> None:
    (tmp_path / "neo4j.dump").write_bytes(b"not really a dump")
    (tmp_path / local_neo4j.DUMP_META).write_text(json.dumps({"neo4j_version": "4.4.30", "database": "neo4j"}))
    target = _server(tmp_path, "target")
    with pytest.raises(AtlasError, match=r"made by Neo4j 4\.4\.30, this server is Neo4j 5\.") as err:
        local_neo4j.load(target, tmp_path)
    assert "dump it again from a Neo4j 5.x server" in str(err.value)
    assert not (target.data_dir / "databases").exists()  # nothing was touched


def run_load(
    api: str, uid: str, clients: int, seconds: float, kill_at: float | None, kill: object
) -> dict[str, object]:
    """``clients`` threads POST the feature query for ``seconds``; ``kill()`` runs at ``kill_at``. Latencies in ms."""
    stop = time.monotonic() + seconds
    lat: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(timeout=15) as c:
            while time.monotonic() < stop:
                t = time.perf_counter()
                try:
                    r = c.post(f"{api}/graphql", json={"query": FEATURE % uid})
                    ok = r.status_code == 200 and "errors" not in r.json()
                    why = f"{r.status_code} {r.text[:200]}"
                except httpx.HTTPError as exc:
                    ok, why = False, repr(exc)
                with lock:
                    lat.append((time.perf_counter() - t) * 1000)
                    if not ok:
                        failures.append(why)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    if kill_at is not None:
        time.sleep(kill_at)
        kill()  # type: ignore[operator]
    for t in threads:
        t.join()
    lat.sort()
    return {
        "requests": len(lat),
        "failures": failures,
        "p50_ms": statistics.median(lat),
        "p99_ms": lat[min(len(lat) - 1, int(0.99 * len(lat)))],
    }


def test_kill_9_one_server_mid_load_and_the_api_keeps_answering(two_servers) -> None:
    a, b, atlas = two_servers
    pid = local_neo4j.status(b).pid
    assert pid is not None
    uid = atlas.uid(5, "res", 1)
    with running_api(ApiSettings(query_timeout_s=30), _neo(a, b)) as api:
        out = run_load(api, uid, clients=10, seconds=4.0, kill_at=1.5, kill=lambda: os.kill(pid, signal.SIGKILL))
        ready = httpx.get(f"{api}/readyz", timeout=10).json()
    # Every read on the dead server is retried on the live one: not one request fails (in flight or not).
    assert out["failures"] == [], out["failures"][:3]
    assert out["requests"] > 40
    assert ready["status"] == "ready" and [s["state"] for s in ready["read_servers"]] == ["serving", "down"], ready
    print(
        f"two readers, one killed: {out['requests']} requests, p50 {out['p50_ms']:.1f} ms, p99 {out['p99_ms']:.1f} ms"
    )
