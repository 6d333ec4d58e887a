"""Per-key rate limits, admission control (a cap on requests executing at once, a bounded queue behind it) and the
steering gate (a concurrency cap with a bounded queue).

Both live in the API process and apply before any resolver runs, so they cover ``steer`` whether the model
runs in this process or in a separate steering worker. With several uvicorn workers each process keeps
its own buckets and gate (the limits are per process; divide them by the worker count if that matters).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from queries.errors import Overloaded, RateLimited, SteerBusy


class RateLimiter:
    """A token bucket per principal: ``per_minute`` requests a minute, bursts of up to 10 seconds' worth."""

    def __init__(self, per_minute: int, what: str = "requests", clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock  # injectable so tests do not depend on the machine's speed
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, math.ceil(per_minute / 6))
        self.what = what
        self._buckets: dict[str, tuple[float, float]] = {}  # principal -> (tokens, last refill)

    def check(self, principal: str) -> None:
        if self.rate <= 0:
            return
        now = self.clock()
        tokens, last = self._buckets.get(principal, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[principal] = (tokens, now)
            raise RateLimited(
                f"rate limit of {self.rate * 60:.0f} {self.what} a minute reached for {principal}",
                (1.0 - tokens) / self.rate,
            )
        self._buckets[principal] = (tokens - 1.0, now)
        if len(self._buckets) > 10_000:  # forget principals whose buckets are full again
            full_after = self.capacity / self.rate
            for p, (_, t) in list(self._buckets.items()):
                if now - t > full_after:
                    del self._buckets[p]


class SteerGate:
    """At most ``concurrency`` steering requests run; up to ``queue`` more wait (each at most ``timeout_s``);
    beyond that a request fails at once with :class:`SteerBusy` and a retry hint from recent durations."""

    def __init__(self, concurrency: int, queue: int, timeout_s: float) -> None:
        self.concurrency, self.queue, self.timeout_s = concurrency, queue, timeout_s
        self._sem = asyncio.Semaphore(concurrency)
        self.admitted = 0  # running + waiting, counted before any await so a burst cannot overshoot
        self.running = 0
        self._avg_s = 10.0  # moving average of a steering request's duration (seconds)

    @property
    def waiting(self) -> int:
        return self.admitted - self.running

    def _hint(self) -> float:
        return self._avg_s * (self.waiting + 1) / self.concurrency

    async def acquire(self) -> float:
        """Wait for a slot (or raise SteerBusy); returns the start time to hand back to :meth:`release`."""
        if self.admitted >= self.concurrency + self.queue:
            raise SteerBusy(
                f"steering is busy ({self.running} running, {self.waiting} waiting, the queue holds {self.queue})",
                self._hint(),
            )
        self.admitted += 1
        try:
            await asyncio.wait_for(self._sem.acquire(), self.timeout_s)
        except BaseException as exc:
            self.admitted -= 1
            if isinstance(exc, TimeoutError):
                raise SteerBusy(
                    f"steering stayed busy for {self.timeout_s:.0f} s while this request waited", self._hint()
                ) from None
            raise
        self.running += 1
        return time.monotonic()

    def release(self, started: float) -> None:
        self.running -= 1
        self.admitted -= 1
        self._sem.release()
        self._avg_s = 0.7 * self._avg_s + 0.3 * (time.monotonic() - started)


class Admission:
    """Admission control: at most ``concurrency`` requests execute at once, ``heavy`` of them heavy ones.

    Why: past the Neo4j pool a request used to wait inside the driver and fail after its acquisition timeout
    (10 s) with an error that blamed the database, and 200 clients' requests in flight at once inflated the
    process. Here the rest wait in FIFO order, without a connection, up to ``timeout_s``; only then (or when
    ``queue`` requests already wait) is a request refused, with :class:`Overloaded` and a retry hint. With
    ``concurrency`` at most the pool size, an admitted request never waits for a connection. Heavy requests
    (circuits, paths: seconds of Neo4j CPU each) get their own smaller cap so they cannot take every slot,
    and every connection, from the cheap look-ups queued behind them.
    """

    def __init__(self, concurrency: int, heavy: int, queue: int, timeout_s: float) -> None:
        self.concurrency, self.heavy = concurrency, min(heavy, concurrency)
        self.queue, self.timeout_s = queue, timeout_s
        self._all = asyncio.Semaphore(concurrency)
        self._heavy = asyncio.Semaphore(self.heavy)
        self.waiting = 0
        self._avg_s = 0.05  # moving average of an admitted request's duration (seconds), for the retry hint

    def _hint(self) -> float:
        return self._avg_s * (self.waiting + 1) / self.concurrency

    async def _take(self, sem: asyncio.Semaphore, deadline: float, heavy: bool) -> None:
        if not sem.locked():  # the common case: no timer, no task
            await sem.acquire()
            return
        running = f"{self.heavy} heavy requests (circuit, path) running" if heavy else f"{self.concurrency} running"
        if self.waiting >= self.queue:
            raise Overloaded(f"the API is at capacity ({running}, {self.waiting} waiting)", self._hint())
        self.waiting += 1
        try:
            await asyncio.wait_for(sem.acquire(), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise Overloaded(
                f"the API stayed at capacity for {self.timeout_s:g} s while this request waited "
                f"({running}, {self.waiting - 1} others waiting)",
                self._hint(),
            ) from None
        finally:
            self.waiting -= 1

    async def acquire(self, heavy: bool) -> float:
        """Wait for a slot (or raise Overloaded); returns the start time to hand back to :meth:`release`."""
        deadline = time.monotonic() + self.timeout_s
        if heavy:
            await self._take(self._heavy, deadline, True)
        try:
            await self._take(self._all, deadline, False)
        except BaseException:
            if heavy:
                self._heavy.release()
            raise
        return time.monotonic()

    def release(self, heavy: bool, started: float) -> None:
        self._all.release()
        if heavy:
            self._heavy.release()
        self._avg_s = 0.9 * self._avg_s + 0.1 * (time.monotonic() - started)
