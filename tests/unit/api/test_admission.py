"""Admission control (atlas_api.guard.Admission) and the pool-exhaustion error: requests beyond the cap queue
instead of failing, heavy ones have their own smaller cap, and a refusal is a typed, retryable error."""

from __future__ import annotations

import asyncio

import pytest
from graphql import parse
from neo4j.exceptions import ConnectionAcquisitionTimeoutError

from atlas_api.cost import operation_shape
from atlas_api.errors import error_code, http_error
from atlas_api.guard import Admission
from atlas_api.settings import ApiSettings
from queries import errors as e
from queries.driver import map_error
from queries.settings import Neo4jSettings


def test_requests_beyond_the_cap_wait_in_order_then_run() -> None:
    async def run() -> tuple[list[int], int]:
        adm = Admission(concurrency=2, heavy=1, queue=100, timeout_s=5)
        running, peak, order = 0, 0, []
        release = asyncio.Event()

        async def one(i: int) -> None:
            nonlocal running, peak
            t = await adm.acquire(heavy=False)
            running += 1
            peak = max(peak, running)
            order.append(i)
            await release.wait()
            running -= 1
            adm.release(False, t)

        tasks = [asyncio.create_task(one(i)) for i in range(6)]
        await asyncio.sleep(0.01)
        assert (running, adm.waiting) == (2, 4)  # two run, four wait: nobody failed
        release.set()
        await asyncio.gather(*tasks)
        return order, peak

    order, peak = asyncio.run(run())
    assert peak == 2 and order == [0, 1, 2, 3, 4, 5]


def test_heavy_requests_have_their_own_cap_and_leave_room_for_light_ones() -> None:
    async def run() -> None:
        adm = Admission(concurrency=3, heavy=1, queue=100, timeout_s=5)
        t_heavy = await adm.acquire(heavy=True)
        second_heavy = asyncio.create_task(adm.acquire(heavy=True))
        await asyncio.sleep(0.01)
        assert not second_heavy.done()  # the heavy lane is full...
        t1, t2 = await adm.acquire(heavy=False), await adm.acquire(heavy=False)  # ...light ones still get in
        adm.release(True, t_heavy)
        t_second = await asyncio.wait_for(second_heavy, 1)
        adm.release(False, t1)
        adm.release(False, t2)
        adm.release(True, t_second)
        assert adm.waiting == 0 and not adm._all.locked() and not adm._heavy.locked()

    asyncio.run(run())


def test_a_request_waiting_past_the_timeout_or_a_full_queue_is_refused_typed_with_a_retry_hint() -> None:
    async def run() -> None:
        adm = Admission(concurrency=1, heavy=1, queue=1, timeout_s=0.05)
        t = await adm.acquire(heavy=False)
        waiter = asyncio.create_task(adm.acquire(heavy=False))
        await asyncio.sleep(0.01)
        with pytest.raises(e.Overloaded, match="at capacity") as full:  # the one queue place is taken
            await adm.acquire(heavy=False)
        with pytest.raises(e.Overloaded, match="stayed at capacity for 0.05 s") as late:
            await waiter
        for info in (full, late):
            assert info.value.retry_after >= 1 and error_code(info.value) == "OVERLOADED"
        assert adm.waiting == 0
        adm.release(False, t)
        adm.release(False, await adm.acquire(heavy=True))  # the slots were all given back

    asyncio.run(run())
    assert http_error(e.Overloaded("x", 2))[1] == 503


def test_pool_exhaustion_is_busy_not_unreachable() -> None:
    settings = Neo4jSettings(uri="bolt://127.0.0.1:7999")
    exc = map_error(
        ConnectionAcquisitionTimeoutError("failed to obtain a connection from the pool within 10.0s"), settings
    )
    assert isinstance(exc, e.DatabaseBusy) and isinstance(exc, e.DatabaseUnavailable)  # old handlers still apply
    assert "busy" in str(exc) and "unreachable" not in str(exc) and "ATLAS_API_NEO4J_POOL_SIZE" in str(exc)
    assert exc.retry_after >= 1 and "retry after" in str(exc)
    assert error_code(exc) == "DATABASE_BUSY" and http_error(exc)[1] == 503
    assert error_code(map_error(ConnectionRefusedError("refused"), settings)) == "DATABASE_UNAVAILABLE"


@pytest.mark.parametrize(
    ("query", "fields", "heavy"),
    [
        ('{ circuit(uids: ["a/1-res/1", "a/2-res/2"]) { __typename } }', ("circuit",), True),
        (
            '{ a: lineage(uid: "a/1-res/1") { nodes { uid } } b: lineage(uid: "a/2-res/1") { nodes { uid } } }',
            ("lineage", "lineage"),
            True,
        ),
        ('{ lineage(uid: "a/1-res/1") { nodes { uid } } }', ("lineage",), False),
        # a big page is a big answer (the complexity limit's business), not heavy graph work
        ("{ features(limit: 1000) { uid layer module index sRes sAtt } }", ("features",), False),
        (
            'query Q { ...F } fragment F on Query { path(from: "a/1-res/1", to: "a/3-res/1") { __typename } }',
            ("path",),
            True,
        ),
    ],
)
def test_heavy_means_graph_work_of_the_root_fields(query: str, fields: tuple[str, ...], heavy: bool) -> None:
    got_fields, work = operation_shape(parse(query), None)
    assert got_fields == fields and (work >= ApiSettings().heavy_query_cost) == heavy
