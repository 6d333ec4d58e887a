"""Matching on a Ray cluster: each layer's matching (its res←res(L−1), res←att(L), res←mlp(L) pairs) is one Ray task.

Why per layer: a layer's three module pairs share the ``res(L)`` decoder, so one task loads it once; the
layers are independent, so a cluster runs them side by side. A task loads its own decoders from the
manifest (the SAE files must be on storage every worker sees: a shared volume, or registry entries) and
returns the :class:`ingest.layer_matching.LayerResult` of ``match_layers`` run on that one layer; the driver writes
results in layer order through the usual online path, so the graph is the single-process graph exactly (same code,
same inputs, same order).

Faults: a worker killed mid-task (SIGKILL, a lost node) makes Ray re-run the task elsewhere
(``max_retries``); tasks are pure functions of their inputs, so the retry returns the same result. With
``gpu=True`` each task asks Ray for one GPU (FAISS then runs on it); a cluster without GPUs is an error
up front rather than tasks that never schedule.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from queries.errors import InvalidInput

if TYPE_CHECKING:
    from ingest.layer_matching import LayerMatch, LayerResult
    from ingest.options import IngestOptions
    from saes.manifest import AtlasManifest

log = logging.getLogger(__name__)

TASK_RETRIES = 3


def _match_task(manifest: AtlasManifest, layer: int, d_model: int, opts: IngestOptions) -> LayerResult:
    """One layer's matching, run inside a Ray worker (imports stay local: the worker starts bare): the single-process
    loop (``match_layers``) on this one layer, so decoders are loaded exactly as there (hook_z SAEs mapped through W_O,
    CLT slices of earlier layers) and matched with the same options. Never streamed: a task holds its layer."""
    from ingest.layer_matching import match_layers

    return next(match_layers(manifest, [layer], d_model, opts)).result


def _check_reachable(address: str) -> None:
    """A quick TCP probe of ``host:port`` so an unreachable cluster is one clear error, not Ray's long retry loop."""
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise InvalidInput(
            f"--ray {address!r} is not a Ray address (use HOST:PORT of the head node, ray://HOST:10001, or auto)"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=3):
            return
    except OSError as exc:
        raise InvalidInput(
            f"the Ray cluster at {address} is unreachable ({exc.strerror or exc}); start it (`ray start --head`) or check "
            "the address, or use --ray auto for a local cluster on this machine"
        ) from None


def worker_env() -> dict[str, str]:
    """Environment for the Ray workers: the driver's import path (a checkout run with PYTHONPATH) and its BLAS/OpenMP
    thread count. Ray starts workers with OMP_NUM_THREADS=1, and BLAS sums in another order with another thread
    count, which moves the last float32 bit of some similarities; with the driver's count the graph is bit-identical
    to the single-process one (on the same kind of CPU)."""
    env = {k: os.environ[k] for k in ("PYTHONPATH", "ATLAS_CACHE_DIR") if k in os.environ}
    env["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS") or str(os.cpu_count() or 1)
    return env


@dataclass
class RayMatching:
    """Submitted matching tasks of one ingest; :meth:`result` waits for a layer's result (in any order)."""

    refs: dict[int, Any] = field(default_factory=dict)
    started_ray: bool = False

    def result(self, layer: int) -> LayerResult:
        import ray
        from ray.exceptions import RayTaskError

        try:
            return ray.get(self.refs.pop(layer))
        except RayTaskError as exc:  # a bad SAE file etc. raised inside the task: the same AtlasError as single-process
            cause = getattr(exc, "cause", None)
            if isinstance(cause, Exception):
                raise cause from None
            raise

    def results(self, layers: Iterable[int]) -> Iterator[LayerMatch]:
        """The results of ``layers`` in that order, as ``match_layers`` yields them (``seconds``: the wait)."""
        from ingest.layer_matching import LayerMatch

        for layer in layers:
            t = time.perf_counter()
            result = self.result(layer)
            yield LayerMatch(layer, result, time.perf_counter() - t)

    def close(self) -> None:
        import ray

        for ref in self.refs.values():
            ray.cancel(ref, force=True)
        self.refs.clear()
        if self.started_ray:
            ray.shutdown()


def connect(address: str, gpu: bool, num_cpus: int | None = None) -> bool:
    """Connect to (or, for ``auto`` with none running, start) a Ray cluster; True when this call started Ray."""
    try:
        import ray
    except ImportError as exc:
        raise InvalidInput(
            "--ray needs the `ray` package (pip install 'ray>=2.40'; deploy/install.sh installs it)"
        ) from exc
    started = False
    if not ray.is_initialized():
        if address != "auto":
            _check_reachable(address)
        ray.init(
            address=None if address == "auto" else address,
            num_cpus=num_cpus if address == "auto" else None,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": worker_env()},
        )
        started = True
    resources = ray.cluster_resources()
    if gpu and resources.get("GPU", 0) < 1:
        if started:
            ray.shutdown()
        have = ", ".join(
            f"{k} {v:g}" for k, v in sorted(resources.items()) if not k.startswith(("node:", "object_store", "memory"))
        )
        raise InvalidInput(
            f"--gpu was given but the Ray cluster at {address} has no GPU (it has {have}); "
            "drop --gpu to match on CPUs, or add GPU nodes to the cluster"
        )
    return started


def submit(
    handle: RayMatching, manifest: AtlasManifest, layers: Iterable[int], d_model: int, opts: IngestOptions
) -> None:
    """Submit one matching task per layer to the connected cluster, into ``handle``."""
    import ray

    task = ray.remote(num_cpus=1, num_gpus=1 if opts.gpu else 0, max_retries=TASK_RETRIES, retry_exceptions=False)(
        _match_task
    )
    manifest_ref = ray.put(manifest)
    opts_ref = ray.put(opts)  # with the W_O projections of hook_z SAEs: put once, not once per task
    for layer in layers:
        handle.refs[layer] = task.options(name=f"atlas-match-{manifest.name}-L{layer}").remote(
            manifest_ref, layer, d_model, opts_ref
        )
    log.info("submitted %d matching tasks for atlas %s to Ray", len(handle.refs), manifest.name)
