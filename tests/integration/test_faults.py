"""The CI variant of bench/faults.py: one seeded SIGKILL of `atlas ingest` mid-run on a tiny synthetic atlas
(against the shared Neo4j), then `--resume`: counts and the edge checksum equal an uninterrupted run.
The full runs (more trials, Neo4j SIGKILLed mid-write, Neo4j restarted under load) are bench/faults.py's."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from queries.db import Graph

REPO = Path(__file__).resolve().parents[2]


def _faults() -> Any:
    import importlib

    return importlib.import_module("bench.faults")  # the script, imported as a module (python -m bench.faults)


def test_ingest_killed_and_resumed_equals_an_uninterrupted_run(graph: Graph, tmp_path: Path) -> None:
    faults = _faults()
    neo = graph.settings
    manifest = faults.write_manifest(tmp_path, layers=3, d_sae=128)
    try:
        ref, _ = faults.reference(neo, manifest)
        assert ref["complete"] and ref["features"] == 3 * 3 * 128 and ref["edges"] > 0
        trial = faults.kill_trial(neo, manifest, random.Random(7).uniform(0.2, 0.8), ref)
        assert trial["resume_rc"] == 0, trial["resume_error"]
        assert trial["killed_mid_run"] and trial["equal"], trial
    finally:
        with Graph(neo) as g:
            from queries.maintenance import drop_atlas

            drop_atlas(g, faults.ATLAS)


def test_steering_worker_killed_mid_request_is_typed_and_the_next_request_succeeds(
    graph: Graph, tmp_path: Path
) -> None:
    """`atlas steer-worker` (a real process, tiny Llama, planted atlas) SIGKILLed while it serves a steer request:
    the API answers that request with the typed ModelUnavailable, and once the worker is back the next one succeeds."""
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time

    import httpx

    from atlas_api.settings import ApiSettings
    from ingest.pipeline import ingest_atlas
    from queries.maintenance import drop_atlas
    from saes.manifest import load_manifest
    from saes.synthetic import planted_atlas
    from tests.factories import tiny_llama
    from tests.servers import free_port, running_api

    lm = tiny_llama(seed=0, d_model=128)
    lm.model.save_pretrained(tmp_path / "model")
    lm.tokenizer.save_pretrained(tmp_path / "model")
    name = f"test-wkill-{int(time.time() * 1000) % 10**8}"
    manifest = load_manifest(
        planted_atlas(name, n_layers=4, d_model=128, d_sae=48, model=str(tmp_path / "model"), seed=3).write(
            tmp_path / "atlas"
        )
    )
    ingest_atlas(manifest, graph, k=2, backend="numpy")
    port = free_port()
    env = {
        **os.environ,
        "NEO4J_URI": graph.settings.uri,
        "NEO4J_PASSWORD": graph.settings.password or "",
        "ATLAS_STEER_MANIFESTS": f'["{tmp_path / "atlas" / "atlas.toml"}"]',
        "PYTHONPATH": str(REPO),
    }

    def worker() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "atlas_cli.main", "steer-worker", "--port", str(port), "--log-level", "warning"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                return proc
            except httpx.HTTPError:
                time.sleep(0.3)
        proc.kill()
        raise AssertionError("the steering worker did not start")

    big = (
        'mutation { steer(input: {atlas: "%s", prompts: [%s], maxNewTokens: 200, temperature: 1.0, store: false, '
        'seeds: [{uid: "%s/2-res/5", strength: 3.0}]}) { __typename ... on SteerSuccess { steered } ... on ModelUnavailable { message } } }'
    )
    small = big.replace("maxNewTokens: 200", "maxNewTokens: 4")
    prompts = ", ".join(['"I think "'] * 16)
    proc = worker()
    try:
        with running_api(
            ApiSettings(steer_worker_url=f"http://127.0.0.1:{port}", mutations="open"), graph.settings
        ) as api:
            answer: dict[str, object] = {}
            t = threading.Thread(
                target=lambda: answer.update(
                    httpx.post(f"{api}/graphql", json={"query": big % (name, prompts, name)}, timeout=120).json()
                )
            )
            t.start()
            time.sleep(1.5)  # the worker is loading the model or generating: mid-request
            assert t.is_alive(), "the request finished before the kill; make it longer"
            os.kill(proc.pid, signal.SIGKILL)
            t.join(120)
            assert answer["data"] == {
                "steer": {"__typename": "ModelUnavailable", "message": answer["data"]["steer"]["message"]}
            }, answer  # type: ignore[index]
            proc = worker()
            nxt = httpx.post(f"{api}/graphql", json={"query": small % (name, '"I think "', name)}, timeout=120).json()
            assert nxt["data"]["steer"]["__typename"] == "SteerSuccess", nxt
    finally:
        proc.kill()
        drop_atlas(graph, name)
