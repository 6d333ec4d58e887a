"""Coalesced feature look-ups (atlas_api.coalesce) and the per-query-text caches of atlas_api.policy: a cached
document is still checked against each request's variables, limits and key, and nothing is cached across
requests but the document and its validation."""

from __future__ import annotations

import asyncio
from typing import Any

from atlas_api.coalesce import Coalescer
from atlas_api.context import Context
from atlas_api.policy import TextLRU
from atlas_api.schema import build_schema
from atlas_api.settings import ApiSettings
from queries import errors as e


def test_look_ups_of_one_loop_turn_share_one_fetch_in_order() -> None:
    calls: list[list[int]] = []

    async def fetch(keys: list[int]) -> list[int]:
        calls.append(list(keys))
        await asyncio.sleep(0)
        return [k * 10 for k in keys]

    async def run() -> None:
        c: Coalescer[int, int] = Coalescer(fetch, max_batch=4)
        got = await asyncio.gather(*(c.load(k) for k in [1, 2, 3, 2, 5, 6]))
        assert got == [10, 20, 30, 20, 50, 60]  # each caller gets its own key's value, duplicates too
        assert calls == [[1, 2, 3, 2], [5, 6]]  # one turn, split at max_batch
        assert await c.load_many([7, 8]) == [70, 80] and calls[-1] == [7, 8]
        assert (c.batches, c.keys) == (3, 8)
        assert await c.load(9) == 90 and calls[-1] == [9]  # nothing cached: a later turn fetches again

    asyncio.run(run())


def test_keys_asked_for_while_a_fetch_runs_wait_for_it_and_then_go_together() -> None:
    """Group commit: one fetch in flight; what arrives meanwhile, over many turns, is one batch after it."""
    calls: list[list[int]] = []
    release = asyncio.Event()

    async def fetch(keys: list[int]) -> list[int]:
        calls.append(list(keys))
        if len(calls) == 1:
            await release.wait()  # the first statement is slow: Neo4j is busy
        return [-k for k in keys]

    async def run() -> None:
        c: Coalescer[int, int] = Coalescer(fetch)
        first = c.load(1)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert calls == [[1]]  # a lone look-up goes at once
        later = []
        for k in (2, 3, 4):  # three more turns while the first fetch runs
            later.append(c.load(k))
            await asyncio.sleep(0)
        assert calls == [[1]]
        release.set()
        assert await first == -1 and await asyncio.gather(*later) == [-2, -3, -4]
        assert calls == [[1], [2, 3, 4]] and (c.batches, c.keys) == (2, 4)

    asyncio.run(run())


def test_a_failed_fetch_fails_each_waiter_typed_and_a_cancelled_one_is_skipped() -> None:
    calls: list[list[str]] = []

    async def fetch(keys: list[str]) -> list[str]:
        calls.append(keys)
        if "bad" in keys:
            raise e.DatabaseUnavailable("Neo4j at bolt://x is unreachable")
        return keys

    async def run() -> None:
        c: Coalescer[str, str] = Coalescer(fetch)
        results = await asyncio.gather(c.load("a"), c.load("bad"), return_exceptions=True)
        assert all(isinstance(r, e.DatabaseUnavailable) for r in results)
        gone = c.load("x")
        gone.cancel()
        assert await c.load("y") == "y" and calls[-1] == ["y"]

    asyncio.run(run())


class _NoRows:
    """A graph with no features (the database is not what these tests check: the caches in front of it are)."""

    async def read(self, text: Any, params: Any = None, **_: Any) -> list[dict[str, Any]]:
        return []


FEATURE = "query($uid: String!) { feature(uid: $uid) { __typename } }"


def _run(schema: Any, query: str, variables: dict[str, Any] | None = None) -> Any:
    ctx = Context(graph=_NoRows(), settings=ApiSettings(), request=None)  # type: ignore[arg-type]
    return asyncio.run(schema.execute(query, variable_values=variables, context_value=ctx))


def test_a_cached_document_still_checks_each_requests_variables_limits_and_key(tmp_path: Any) -> None:
    settings = ApiSettings(keys_file=tmp_path / "keys.json", max_complexity=60)
    schema = build_schema(settings)
    for _ in range(2):  # the second round is served from the parse and validation caches
        ok = _run(schema, FEATURE, {"uid": "a/1-res/2"})
        assert not ok.errors and ok.data == {"feature": {"__typename": "FeatureNotFound"}}
        bad = _run(schema, FEATURE, {"uid": 5})  # variables are coerced per request, never cached
        assert bad.errors and "uid" in bad.errors[0].message
        missing = _run(schema, FEATURE, {})
        assert missing.errors and "uid" in missing.errors[0].message
        big = _run(
            schema,
            'query { lineage(uid: "a/1-res/2") { nodes { uid } } b: lineage(uid: "a/1-res/3") { nodes { uid } } }',
        )
        assert big.errors and big.errors[0].extensions["code"] == "QUERY_TOO_COMPLEX"
        mut = _run(schema, 'mutation { setLabel(uid: "a/1-res/2", label: "x") { __typename } }')
        assert mut.errors and mut.errors[0].extensions["code"] == "UNAUTHENTICATED" and mut.data is None


def test_the_text_caches_are_bounded_by_entries_and_by_total_text() -> None:
    lru: TextLRU[int] = TextLRU(max_entries=3, max_chars=400)  # texts above 50 characters are not kept
    for i in range(5):
        lru.put((f"q{i}", None), i)
    assert len(lru) == 3 and lru.get(("q0", None)) is None and lru.get(("q4", None)) == 4
    big: TextLRU[int] = TextLRU(max_entries=100, max_chars=400)
    for i in range(9):
        big.put((str(i) * 50, None), i)  # 9 × 50 characters: over the text budget
    assert big.chars <= 400 and len(big) == 8 and big.get(("0" * 50, None)) is None
    big.get(("1" * 50, None))  # recently used: kept when the next one comes
    big.put(("z" * 50, None), 10)
    assert big.get(("1" * 50, None)) == 1 and big.get(("2" * 50, None)) is None
    big.put(("y" * 51, None), 1)  # one text above an eighth of the budget is never kept
    assert big.get(("y" * 51, None)) is None and big.chars <= 400
