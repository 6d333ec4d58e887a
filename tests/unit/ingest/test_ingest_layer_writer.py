"""ingest.writer.LayerWriter: layer L is written while the caller matches L+1, in order, one layer waiting at
most, a failed write surfacing at the next step, and nothing left half-sent on the way out."""

from __future__ import annotations

import threading
import time

import pytest

from ingest.layer_matching import LayerResult
from ingest.writer import LayerWriter
from queries.errors import DatabaseUnavailable


def _layer(n: int) -> LayerResult:
    return LayerResult(n, {}, [])


def test_a_write_overlaps_the_caller_and_layers_go_in_order_one_waiting() -> None:
    written: list[int] = []
    gate = threading.Event()

    def write(r: LayerResult) -> None:
        if r.layer == 0:
            assert gate.wait(5)
        written.append(r.layer)

    w = LayerWriter(write, overlap=True)
    t = time.perf_counter()
    w.submit(_layer(0))
    assert time.perf_counter() - t < 1 and written == []  # the caller goes on (to match the next layer)
    threading.Timer(0.3, gate.set).start()
    w.submit(_layer(1))  # waits for layer 0 first: order, and at most one layer held back
    assert written[:1] == [0] and time.perf_counter() - t >= 0.25
    w.submit(_layer(2))
    w.finish()
    w.close()
    assert written == [0, 1, 2] and w.waited_s >= 0.25


def test_a_failed_write_surfaces_at_the_next_step_and_nothing_after_it_is_written() -> None:
    written: list[int] = []

    def write(r: LayerResult) -> None:
        if r.layer == 1:
            raise DatabaseUnavailable("Neo4j at bolt://127.0.0.1:7687 is unreachable")
        written.append(r.layer)

    w = LayerWriter(write, overlap=True)
    w.submit(_layer(0))
    w.submit(_layer(1))
    with pytest.raises(DatabaseUnavailable):
        w.submit(_layer(2))
    w.close()
    assert written == [0]  # layer 2 was never sent: a resume starts at layer 1


def test_close_waits_for_the_layer_being_written() -> None:
    written: list[int] = []

    def write(r: LayerResult) -> None:
        time.sleep(0.2)
        written.append(r.layer)

    w = LayerWriter(write, overlap=True)
    w.submit(_layer(7))
    w.close()  # e.g. matching the next layer failed: the layer in flight is finished, not abandoned half-sent
    assert written == [7]


def test_without_overlap_each_layer_is_written_before_submit_returns() -> None:
    written: list[int] = []
    w = LayerWriter(lambda r: written.append(r.layer), overlap=False)
    w.submit(_layer(3))
    assert written == [3]
    w.finish()
    w.close()
