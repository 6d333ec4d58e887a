"""`atlas steer-worker` on loopback with a tiny Llama and a planted atlas in the real Neo4j: the same result as the
in-process steerer (directly and through the API's steer mutation), SteerBusy when the queue is full, SteerTimeout
past the per-request timeout, and one clear error when the worker is unreachable."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from atlas_api.settings import ApiSettings
from queries import errors as qerrors
from queries.db import Graph
from saes.synthetic import planted_atlas
from steering.generate import GenerationConfig
from steering.remote import RemoteSteerer
from steering.service import Steerer, SteeringSettings, SteerRequest
from steering.wire import SteerTimeout
from steering.worker import WorkerSettings, create_worker_app
from tests.factories import tiny_llama
from tests.servers import free_port, running_api


@contextmanager
def running_worker(steerer: Any, **settings: Any) -> Iterator[str]:
    port = free_port()
    app = create_worker_app(steerer, WorkerSettings(host="127.0.0.1", port=port, **settings))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the steering worker did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


class Held:
    """The real steerer, held at the door until ``release`` (so a test can fill the worker's slot on purpose)."""

    def __init__(self, inner: Steerer) -> None:
        self.inner, self.graph, self.gate = inner, inner.graph, threading.Event()

    def steer(self, req: SteerRequest) -> Any:
        self.gate.wait(30)
        return self.inner.steer(req)


@pytest.fixture(scope="module")
def planted(graph: Graph, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    from ingest.pipeline import ingest_atlas
    from queries.maintenance import drop_atlas
    from saes.manifest import load_manifest

    root = tmp_path_factory.mktemp("steer-worker")
    lm = tiny_llama(seed=0, d_model=128)
    lm.model.save_pretrained(root / "model")
    lm.tokenizer.save_pretrained(root / "model")
    name = f"test-worker-{int(time.time() * 1000) % 10**8}"
    p = planted_atlas(name, n_layers=4, d_model=128, d_sae=48, model=str(root / "model"), seed=3)
    manifest = load_manifest(p.write(root / "atlas"))
    ingest_atlas(manifest, graph, k=2, backend="numpy")
    yield name, root / "atlas" / "atlas.toml"
    drop_atlas(graph, name)


def _req(atlas: str) -> SteerRequest:
    return SteerRequest(
        atlas=atlas,
        prompts=["I think "],
        seeds=[(f"{atlas}/2-res/5", 3.0)],
        store=False,
        generation=GenerationConfig(max_new_tokens=6, temperature=0),
    )


def test_worker_gives_the_in_process_result_directly_and_through_the_api(graph: Graph, planted) -> None:  # type: ignore[no-untyped-def]
    atlas, manifest = planted
    steerer = Steerer(graph, SteeringSettings(manifests=[str(manifest)]))
    local = steerer.steer(_req(atlas))
    with running_worker(steerer) as url:
        remote = RemoteSteerer(url).steer(_req(atlas))
        assert (remote.baseline, remote.steered, remote.model) == (local.baseline, local.steered, local.model)
        assert [(a.feature.uid, a.feature.coefficient, a.unit) for a in remote.applied] == [
            (a.feature.uid, a.feature.coefficient, a.unit) for a in local.applied
        ]
        with pytest.raises(qerrors.FeatureNotFound, match="does not exist in atlas"):
            RemoteSteerer(url).steer(SteerRequest(atlas=atlas, prompts=["x"], seeds=[(f"{atlas}/2-res/47000", 1.0)]))
        mutation = (
            'mutation { steer(input: {atlas: "%s", prompt: "I think ", maxNewTokens: 6, temperature: 0, store: false, '
            'seeds: [{uid: "%s/2-res/5", strength: 3.0}]}) { __typename ... on SteerSuccess { steered } } }'
        ) % (atlas, atlas)
        with running_api(ApiSettings(steer_worker_url=url, mutations="open"), graph.settings) as api:
            body = httpx.post(f"{api}/graphql", json={"query": mutation}, timeout=60).json()
        assert body["data"]["steer"] == {"__typename": "SteerSuccess", "steered": local.steered}


def test_a_full_queue_is_steer_busy_and_a_slow_request_is_steer_timeout(graph: Graph, planted) -> None:  # type: ignore[no-untyped-def]
    atlas, manifest = planted
    held = Held(Steerer(graph, SteeringSettings(manifests=[str(manifest)])))
    with running_worker(held, queue_size=0, timeout_s=1.0) as url:
        client = RemoteSteerer(url)
        first: dict[str, BaseException] = {}
        t = threading.Thread(target=lambda: first.setdefault("error", _catch(client, _req(atlas))))
        t.start()
        deadline = time.monotonic() + 5
        while httpx.get(f"{url}/healthz").json()["running"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with pytest.raises(
            qerrors.SteerBusy,
            match=r"the steering worker is busy \(1 running, 0 waiting, the queue holds 0\); retry after \d+ s",
        ):
            client.steer(_req(atlas))
        t.join(10)
        # The held request ran past the 1 s timeout: a typed SteerTimeout (a kind of SteerBusy), not a hang.
        assert isinstance(first["error"], SteerTimeout) and "timeout of 1 s" in str(first["error"])
        held.gate.set()
        deadline = time.monotonic() + 30  # the slot frees once the timed-out generation really ends
        while httpx.get(f"{url}/healthz").json()["running"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def _catch(client: RemoteSteerer, req: SteerRequest) -> BaseException | None:
    try:
        client.steer(req)
    except BaseException as exc:  # noqa: BLE001 - handed to the test thread
        return exc
    return None


def test_an_unreachable_worker_is_one_clear_error() -> None:
    with pytest.raises(
        qerrors.ModelUnavailable,
        match=r"the steering worker at http://127\.0\.0\.1:1 is unreachable .*atlas steer-worker",
    ):
        RemoteSteerer("http://127.0.0.1:1", timeout_s=3).steer(SteerRequest(atlas="a", prompts=["x"]))
