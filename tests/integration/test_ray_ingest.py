"""`atlas ingest --ray` on a local Ray (2 CPUs) against the real Neo4j: the same graph as the single process —
node/edge counts and a checksum of (source uid, target uid, similarity) — with and without a Ray worker
killed by SIGKILL in the middle of a matching task; bad input is one clear error and writes nothing."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import ray

from ingest.options import IngestOptions
from ingest.pipeline import ingest_atlas
from ingest.ray_matching import connect, worker_env
from queries.db import Graph
from queries.errors import InvalidInput
from queries.ids import Module
from saes.manifest import AtlasManifest, SAEEntry, SyntheticSpec, load_manifest
from saes.synthetic import planted_atlas

K = 3


def _fingerprint(g: Graph, atlas: str) -> dict[str, object]:
    edges = g.read(
        "MATCH (s:Feature {atlas: $a})-[e:FLOWS_TO]->(t) RETURN s.uid AS s, t.uid AS t, e.similarity AS sim ORDER BY s, t",
        {"a": atlas},
    )
    feats = g.read(
        "MATCH (f:Feature {atlas: $a}) RETURN f.uid AS uid, f.category AS c, f.s_res AS r ORDER BY uid", {"a": atlas}
    )
    h = hashlib.sha256()
    for e in edges:
        h.update(f"{e['s']}|{e['t']}|{e['sim']!r}\n".encode())
    for f in feats:
        h.update(f"{f['uid']}|{f['c']}|{f['r']!r}\n".encode())
    return {"features": len(feats), "edges": len(edges), "sha256": h.hexdigest()}


@pytest.fixture(scope="module")
def manifest() -> AtlasManifest:
    # Random synthetic SAEs: 3 layers × res/att/mlp × 1,024 features (9,216 features, ~26k edges); seconds per layer.
    entries = [
        SAEEntry(layer, mod, synthetic=SyntheticSpec(d_sae=1024, seed=1000 * layer + i, d_in=128))
        for layer in range(3)
        for i, mod in enumerate(Module)
    ]
    return AtlasManifest(name=f"test-ray-{os.getpid()}", model="synthetic/random", d_model=128, saes=entries)


@pytest.fixture(scope="module")
def single(graph: Graph, manifest) -> Iterator[dict[str, object]]:  # type: ignore[no-untyped-def]
    ingest_atlas(manifest, graph, options=IngestOptions(k=K))
    fp = _fingerprint(graph, manifest.name)
    yield fp
    from queries.maintenance import drop_atlas

    drop_atlas(graph, manifest.name)


def test_unreachable_cluster_is_one_clear_error_and_writes_nothing(graph: Graph, tmp_path: Path) -> None:
    assert not ray.is_initialized()
    pa = planted_atlas(name=f"test-ray-bad-{os.getpid()}", n_layers=2, d_model=128, d_sae=16, seed=1)
    m = load_manifest(pa.write(tmp_path / "atlas"))
    with pytest.raises(InvalidInput, match=r"the Ray cluster at 127\.0\.0\.1:1 is unreachable .*ray start --head"):
        ingest_atlas(m, graph, options=IngestOptions(k=K, ray="127.0.0.1:1"))
    assert graph.read("MATCH (a:Atlas {name: $n}) RETURN a", {"n": m.name}) == []
    with pytest.raises(InvalidInput, match="is not a Ray address"):
        connect("no-port-here", gpu=False)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": worker_env()})
    yield
    ray.shutdown()


def test_gpu_on_a_cluster_without_gpus_is_one_clear_error(local_ray: None) -> None:
    with pytest.raises(InvalidInput, match=r"--gpu was given but the Ray cluster at auto has no GPU \(it has CPU 2"):
        connect("auto", gpu=True)
    assert ray.is_initialized()  # an existing session is the caller's: left running


def test_a_worker_killed_mid_task_still_gives_the_same_graph(
    graph: Graph, manifest, single: dict[str, object], local_ray: None
) -> None:  # type: ignore[no-untyped-def]
    killed: list[int] = []
    stop = threading.Event()

    def killer() -> None:
        # A Ray worker running a task titles itself `ray::<task name>`; kill the first matching task found.
        while not stop.is_set() and not killed:
            for p in psutil.process_iter(["pid", "cmdline"]):
                if any("atlas-match-" in part for part in (p.info["cmdline"] or [])):
                    os.kill(p.info["pid"], signal.SIGKILL)
                    killed.append(p.info["pid"])
                    break
            time.sleep(0.01)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    try:
        report = ingest_atlas(manifest, graph, options=IngestOptions(k=K, ray="auto"))
    finally:
        stop.set()
        t.join(5)
    assert killed, "no Ray worker was caught running a matching task (the test did not test anything)"
    assert report.layers_written == manifest.layers
    assert _fingerprint(graph, manifest.name) == single


def test_ray_ingest_equals_single_process(graph: Graph, manifest, single: dict[str, object], local_ray: None) -> None:  # type: ignore[no-untyped-def]
    report = ingest_atlas(manifest, graph, options=IngestOptions(k=K, ray="auto"))
    assert report.layers_written == manifest.layers
    assert _fingerprint(graph, manifest.name) == single
    assert single["features"] == 3 * 3 * 1024
