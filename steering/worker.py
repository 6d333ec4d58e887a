"""``atlas steer-worker``: the steering model in its own process, so API replicas do not each hold a model.

The API sends steer mutations here when ``ATLAS_API_STEER_WORKER_URL`` is set (in-process stays the default).
HTTP: ``POST /steer`` (JSON of ``steering.service.SteerRequest``, see ``steering.wire``), ``GET /healthz``,
``GET /readyz`` (Neo4j answers).

Admission: ``concurrency`` requests run (the model lock serialises generation anyway), up to ``queue_size``
more wait; a request beyond that is refused at once with ``SteerBusy`` (HTTP 429 + ``retry_after``), and one
that waited longer than the timeout gets ``SteerBusy`` too — the same type the API's in-process gate raises.
A request that *runs* past ``timeout_s`` is answered with ``SteerTimeout`` (504); its generation cannot be
interrupted, so its slot stays taken until it really ends (the bound on concurrent work holds).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from queries import errors as qerrors
from steering import wire

log = logging.getLogger(__name__)


class WorkerSettings(BaseSettings):
    """Steering worker settings (env prefix ``ATLAS_STEER_WORKER_``)."""

    model_config = SettingsConfigDict(env_prefix="ATLAS_STEER_WORKER_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8100, ge=1, le=65535)
    concurrency: int = Field(default=1, ge=1)
    queue_size: int = Field(default=8, ge=0)
    # Per request, waiting in the queue included (seconds).
    timeout_s: float = Field(default=120.0, gt=0)


class _Gate:
    def __init__(self, s: WorkerSettings) -> None:
        self.s = s
        self.sem = asyncio.Semaphore(s.concurrency)
        self.running = 0
        self.waiting = 0
        self.avg_s = 10.0

    def hint(self) -> float:
        return self.avg_s * (self.waiting + 1) / self.s.concurrency


def create_worker_app(steerer: Any, settings: WorkerSettings | None = None) -> Starlette:
    """The worker's ASGI app around one :class:`steering.service.Steerer` (or anything with its ``steer``/``graph``)."""
    s = settings or WorkerSettings()
    state: dict[str, _Gate] = {}

    def gate() -> _Gate:  # created on the serving loop
        if "gate" not in state:
            state["gate"] = _Gate(s)
        return state["gate"]

    async def steer(request: Request) -> JSONResponse:
        g = gate()
        t0 = time.monotonic()
        try:
            req = wire.request_from_json(await request.json())
            if g.running >= s.concurrency and g.waiting >= s.queue_size:
                raise qerrors.SteerBusy(
                    f"the steering worker is busy ({g.running} running, {g.waiting} waiting, the queue holds {s.queue_size})",
                    g.hint(),
                )
            g.waiting += 1
            try:
                await asyncio.wait_for(g.sem.acquire(), s.timeout_s)
            except TimeoutError:
                raise qerrors.SteerBusy(
                    f"the steering worker stayed busy for {s.timeout_s:.0f} s while this request waited", g.hint()
                ) from None
            finally:
                g.waiting -= 1
            g.running += 1
            started = time.monotonic()

            def done(_: object) -> None:
                g.running -= 1
                g.sem.release()
                g.avg_s = 0.7 * g.avg_s + 0.3 * (time.monotonic() - started)

            fut = asyncio.get_running_loop().run_in_executor(None, steerer.steer, req)
            fut.add_done_callback(done)
            remaining = max(0.1, s.timeout_s - (started - t0))
            try:
                res = await asyncio.wait_for(asyncio.shield(fut), remaining)
            except TimeoutError:
                raise wire.SteerTimeout(
                    f"the steering request did not finish within the worker's timeout of {s.timeout_s:.0f} s "
                    "(fewer prompts or tokens, or raise ATLAS_STEER_WORKER_TIMEOUT_S)",
                    g.hint(),
                ) from None
        except qerrors.AtlasError as exc:
            status, body = wire.error_to_json(exc)
            return JSONResponse(
                body,
                status_code=status,
                headers={"Retry-After": str(body["retry_after"])} if "retry_after" in body else None,
            )
        return JSONResponse(wire.result_to_json(res))

    async def healthz(_: Request) -> JSONResponse:
        g = gate()
        return JSONResponse({"status": "ok", "running": g.running, "waiting": g.waiting, "queue_size": s.queue_size})

    async def readyz(_: Request) -> JSONResponse:
        try:
            await asyncio.to_thread(steerer.graph.verify)
        except qerrors.AtlasError as exc:
            return JSONResponse({"status": "unavailable", "neo4j": str(exc)}, status_code=503)
        return JSONResponse({"status": "ready"})

    return Starlette(
        routes=[Route("/steer", steer, methods=["POST"]), Route("/healthz", healthz), Route("/readyz", readyz)]
    )
