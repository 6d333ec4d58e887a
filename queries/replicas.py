"""Read scale-out: spread the API's reads over N Neo4j servers that hold the same atlases.

An ingested atlas is written once and read many times, so the cheap way to serve many readers is several
servers loaded from one dump (``atlas db dump`` / ``atlas db load``) or from the same bulk CSVs, with reads
spread over them. ``NEO4J_READ_URIS`` lists them; writes (labels, steering runs) still go to ``NEO4J_URI``.
A routing URI (``neo4j://``, ``neo4j+s://``: an Enterprise cluster or Aura) needs none of this — the driver
routes reads itself — so it is passed through as the primary and not listed here.

Consistency: servers must hold the *same* atlases. Each server's fingerprint — every ``Atlas`` node's
``(name, manifest_sha256, complete)`` — is read before the first read is sent to it; the first server to
answer sets the reference, and a server whose fingerprint differs is refused (never read from, reported by
``/readyz``) instead of mixing two versions of an atlas in one answer.

Failover: a read that finds its server unreachable marks it down for ``cooldown_s`` and is retried on the
next server (reads are idempotent); only when every server is down does the caller see DatabaseUnavailable.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, LiteralString

from queries.aio import AsyncGraph
from queries.errors import DatabaseUnavailable, InvalidInput
from queries.settings import Neo4jSettings

log = logging.getLogger(__name__)

FINGERPRINT: LiteralString = """
MATCH (a:Atlas)
RETURN a.name AS name, a.manifest_sha256 AS sha, coalesce(a.complete, false) AS complete ORDER BY name
"""

Fingerprint = tuple[tuple[str, str | None, bool], ...]


def describe_mismatch(uri: str, got: Fingerprint, ref_uri: str, ref: Fingerprint) -> str:
    def fmt(v: tuple[str | None, bool] | None) -> str:
        return "absent" if v is None else f"sha256 {str(v[0])[:12]}{'' if v[1] else ', incomplete'}"

    mine = {n: (s, c) for n, s, c in got}
    theirs = {n: (s, c) for n, s, c in ref}
    diffs = [
        f"{name}: {fmt(mine.get(name))} vs {fmt(theirs.get(name))}"
        for name in sorted(set(mine) | set(theirs))
        if mine.get(name) != theirs.get(name)
    ]
    return (
        f"read server {uri} holds different atlases than {ref_uri} ({'; '.join(diffs[:5])}); it is not used for reads. "
        "Load every read server from the same dump (`atlas db dump` on one, `atlas db load` on the others) and restart this API"
    )


@dataclass
class _Replica:
    uri: str
    graph: AsyncGraph
    fingerprint: Fingerprint | None = None
    refused: str | None = None  # why it is never read from
    down_until: float = 0.0
    last_error: str | None = None
    reads: int = field(default=0)


class ReplicatedAsyncGraph:
    """The :class:`AsyncGraph` interface over a primary (writes) and N read servers (reads)."""

    def __init__(
        self, settings: Neo4jSettings, read_uris: list[str], *, max_pool_size: int = 50, cooldown_s: float = 5.0
    ) -> None:
        if not read_uris:
            raise InvalidInput(
                "NEO4J_READ_URIS is empty: give at least one bolt:// URI, or unset it to read from NEO4J_URI"
            )
        for uri in read_uris:
            if uri.split("://", 1)[0] not in ("bolt", "bolt+s", "bolt+ssc"):
                raise InvalidInput(
                    f"read server {uri!r} in NEO4J_READ_URIS is not a bolt:// URI (a routing neo4j:// URI routes reads "
                    "by itself: put it in NEO4J_URI and leave NEO4J_READ_URIS empty)"
                )
        self.settings = settings
        self.cooldown_s = cooldown_s
        self.primary = AsyncGraph(settings, max_pool_size=max_pool_size)
        self.replicas = [
            _Replica(uri, AsyncGraph(settings.model_copy(update={"uri": uri}), max_pool_size=max_pool_size))
            for uri in read_uris
        ]
        self._reference: tuple[str, Fingerprint] | None = None
        self._cycle = itertools.cycle(range(len(self.replicas)))

    async def close(self) -> None:
        await self.primary.close()
        for r in self.replicas:
            await r.graph.close()

    async def verify(self) -> None:
        """Check every read server's fingerprint now; raise DatabaseUnavailable unless one can serve reads."""
        for r in self.replicas:
            try:
                await self._check(r)
            except DatabaseUnavailable as exc:
                self._mark_down(r, exc)
        if not self.usable():
            raise DatabaseUnavailable(self._none_usable())

    def usable(self) -> list[str]:
        now = time.monotonic()
        return [r.uri for r in self.replicas if r.refused is None and r.fingerprint is not None and r.down_until <= now]

    def status(self) -> list[dict[str, Any]]:
        """Per read server: state (serving / down / refused / unchecked), reads served, last problem."""
        now = time.monotonic()
        out = []
        for r in self.replicas:
            state = (
                "refused"
                if r.refused
                else "down"
                if r.down_until > now
                else "unchecked"
                if r.fingerprint is None
                else "serving"
            )
            out.append(
                {
                    "uri": r.uri,
                    "state": state,
                    "reads": r.reads,
                    "problem": r.refused or (r.last_error if state == "down" else None),
                }
            )
        return out

    async def _check(self, r: _Replica) -> None:
        rows = await r.graph.read(FINGERPRINT, timeout=self.settings.connect_timeout_s * 2)
        fp: Fingerprint = tuple((row["name"], row["sha"], bool(row["complete"])) for row in rows)
        if self._reference is None:
            self._reference = (r.uri, fp)
        elif fp != self._reference[1]:
            r.refused = describe_mismatch(r.uri, fp, *self._reference)
            log.error("%s", r.refused)
        r.fingerprint = fp

    def _mark_down(self, r: _Replica, exc: Exception) -> None:
        r.down_until = time.monotonic() + self.cooldown_s
        r.last_error = str(exc)
        log.warning("read server %s is unavailable for %.0f s: %s", r.uri, self.cooldown_s, exc)

    def _none_usable(self) -> str:
        parts = [f"{s['uri']} {s['state']}" + (f" ({s['problem']})" if s["problem"] else "") for s in self.status()]
        return "no read server can answer: " + "; ".join(parts)

    async def read(
        self, text: LiteralString, params: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> list[dict[str, Any]]:
        """Round-robin over the usable read servers; a server found unreachable is skipped for ``cooldown_s`` and the
        read goes to the next one. Servers in their cooldown are tried last, so a recovered server rejoins."""
        now = time.monotonic()
        start = next(self._cycle)
        order = self.replicas[start:] + self.replicas[:start]
        order = [r for r in order if r.refused is None]
        order.sort(key=lambda r: r.down_until > now)  # stable: healthy first, in round-robin order
        last: Exception | None = None
        for r in order:
            try:
                if r.fingerprint is None:
                    await self._check(r)
                    if r.refused:
                        continue
                rows = await r.graph.read(text, params, timeout=timeout)
            except DatabaseUnavailable as exc:
                self._mark_down(r, exc)
                last = exc
                continue
            r.down_until = 0.0
            r.reads += 1
            return rows
        raise DatabaseUnavailable(self._none_usable()) from last

    async def write(
        self, text: LiteralString, params: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> list[dict[str, Any]]:
        """Writes go to the primary (NEO4J_URI) only; read servers are refreshed from its dumps."""
        return await self.primary.write(text, params, timeout=timeout)


def open_async_graph(settings: Neo4jSettings, *, max_pool_size: int = 50) -> AsyncGraph | ReplicatedAsyncGraph:
    """The API's graph: one server (the default, and any routing URI), or read servers from ``NEO4J_READ_URIS``."""
    uris = settings.read_uri_list
    if not uris:
        return AsyncGraph(settings, max_pool_size=max_pool_size)
    return ReplicatedAsyncGraph(settings, uris, max_pool_size=max_pool_size)
