"""The overlap engine: order, per-item errors, bounded memory, clean shutdown; the layout."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from depthlite.pipeline import Layout, Overlap, Stage, plan_layout
from depthlite.pipeline import layout as layout_module


def _engine_threads() -> list[threading.Thread]:
    return [
        t for t in threading.enumerate() if t.name.startswith("depthlite-overlap-") and t.is_alive()
    ]


@pytest.fixture(autouse=True)
def _no_thread_left_behind() -> Iterator[None]:
    assert not _engine_threads()
    yield
    assert not _engine_threads()


def _double(_: int, value: int) -> int:
    return value * 2


def test_results_come_back_in_input_order_when_workers_finish_out_of_order() -> None:
    first_may_finish = threading.Event()

    def slow_first(item: int, value: int) -> int:
        if item == 0:
            # Item 0 cannot finish before item 1 has: the workers finish out of order.
            assert first_may_finish.wait(timeout=30)
        elif item == 1:
            first_may_finish.set()
        return value + 100

    stages = [Stage("a", slow_first, workers=2), Stage("b", _double, workers=3)]
    with Overlap(range(20), stages, in_flight=4) as outcomes:
        got = [(o.index, o.item, o.value, o.error) for o in outcomes]
    assert got == [(i, i, (i + 100) * 2, None) for i in range(20)]


def test_an_item_error_fails_that_item_only_and_skips_its_later_stages() -> None:
    seen_by_last: list[int] = []

    def picky(item: int, value: int) -> int:
        if item % 3 == 1:
            raise ValueError(f"item {item} is bad")
        return value

    def last(item: int, value: int) -> int:
        seen_by_last.append(item)
        return value

    stages = [Stage("picky", picky, 2), Stage("last", last, 2)]
    with Overlap(range(9), stages, in_flight=3, item_errors=(ValueError,)) as outcomes:
        results = list(outcomes)
    assert [o.index for o in results] == list(range(9))
    failed = [o.item for o in results if o.error is not None]
    assert failed == [1, 4, 7]
    assert all(isinstance(o.error, ValueError) and o.value is None for o in results if o.error)
    assert sorted(seen_by_last) == [0, 2, 3, 5, 6, 8]


@pytest.mark.parametrize("error", [RuntimeError("model broke"), KeyboardInterrupt()])
def test_any_other_error_stops_every_stage_and_reaches_the_caller(error: BaseException) -> None:
    def breaks(item: int, value: int) -> int:
        if item == 5:
            raise error
        return value

    stages = [Stage("a", breaks, 2), Stage("b", _double, 2)]
    received: list[int] = []
    with pytest.raises(type(error)), Overlap(range(1000), stages, in_flight=3) as outcomes:
        received.extend(o.item for o in outcomes)
    assert received == list(range(len(received))) and len(received) <= 5


def test_items_in_flight_are_bounded_and_the_input_is_read_lazily() -> None:
    in_flight = 3
    lock = threading.Lock()
    pulled, started, received, worst = [0], [0], [0], [0]

    def items() -> Iterator[int]:
        for index in range(500):
            pulled[0] += 1
            yield index

    def first(_: int, value: int) -> int:
        with lock:
            started[0] += 1
            worst[0] = max(worst[0], started[0] - received[0])
        return value

    stages = [Stage("a", first, 2), Stage("b", _double, 2)]
    with Overlap(items(), stages, in_flight=in_flight) as outcomes:
        for outcome in outcomes:
            with lock:
                received[0] += 1
                # The feeder may hold one item it has pulled but not yet admitted.
                assert pulled[0] <= received[0] + in_flight + 1
            assert outcome.error is None
    assert received[0] == 500
    assert 1 <= worst[0] <= in_flight


def test_leaving_early_stops_and_joins_every_thread() -> None:
    stages = [Stage("a", _double, 2), Stage("b", _double, 2)]
    with Overlap(range(10_000), stages, in_flight=4) as outcomes:
        for outcome in outcomes:
            if outcome.index == 3:
                break
    # the fixture checks that no engine thread is left


def _consume_until_failing(engine: Overlap[int]) -> None:
    with engine as outcomes:
        for outcome in outcomes:
            if outcome.index == 2:
                raise KeyError("the caller's own failure")


def test_an_error_in_the_callers_loop_stops_the_stages() -> None:
    engine: Overlap[int] = Overlap(range(10_000), [Stage("a", _double, 2)], in_flight=2)
    with pytest.raises(KeyError):
        _consume_until_failing(engine)


def test_one_in_flight_and_one_worker_each_runs_in_the_callers_thread() -> None:
    threads: set[str] = set()

    def where(_: int, value: int) -> int:
        threads.add(threading.current_thread().name)
        return value + 1

    engine: Overlap[int] = Overlap(range(4), [Stage("a", where), Stage("b", where)])
    assert engine.sequential
    with engine as outcomes:
        values = [o.value for o in outcomes]
    assert values == [2, 3, 4, 5]
    assert threads == {threading.current_thread().name}


def test_an_empty_input_gives_nothing() -> None:
    with Overlap([], [Stage("a", _double, 2)], in_flight=3) as outcomes:
        assert list(outcomes) == []


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one worker"):
        Stage("a", _double, 0)
    with pytest.raises(ValueError, match="in_flight"):
        Overlap([1], [Stage("a", _double)], in_flight=0)
    with pytest.raises(ValueError, match="at least one stage"):
        Overlap([1], [])


@pytest.mark.parametrize(
    ("threads", "workers", "count", "expected"),
    [
        (None, None, 1, Layout(None, 1)),  # one image: every core on its network
        (3, 4, 1, Layout(3, 1)),
        (None, None, 10, Layout(1, 4)),  # many: one single-threaded session per core
        (2, None, 10, Layout(2, 2)),
        (None, 2, 10, Layout(2, 2)),
        (None, 1, 10, Layout(4, 1)),  # --workers 1: today's loop on every core
        (8, None, 10, Layout(8, 1)),
        (1, 3, 10, Layout(1, 3)),
    ],
)
def test_plan_layout_fills_the_cores(
    threads: int | None,
    workers: int | None,
    count: int,
    expected: Layout,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(layout_module, "default_threads", lambda: 4)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert plan_layout(threads, workers, count) == expected


def test_omp_num_threads_counts_as_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layout_module, "default_threads", lambda: 4)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert plan_layout(None, None, 10) == Layout(None, 1)
    assert plan_layout(None, 2, 10) == Layout(2, 2)


def test_a_layout_holds_one_image_per_worker_and_one_finished_out_of_order() -> None:
    assert Layout(4, 1).in_flight == 1
    assert Layout(1, 4).in_flight == 5


def test_a_worker_that_finished_out_of_order_takes_the_next_image() -> None:
    # Image 0 is slow; the other worker finishes image 1, and must go on to image 2 while
    # image 0 is still running (a layout's one extra slot), not idle until 0 is reported.
    layout = Layout(1, 2)
    third_started = threading.Event()

    def work(item: int, _: object) -> bool:
        if item == 0:
            return third_started.wait(timeout=5)
        if item == 2:
            third_started.set()
        return True

    stage = Stage("image", work, layout.workers)
    with Overlap(range(3), [stage], in_flight=layout.in_flight) as outcomes:
        values = [outcome.value for outcome in outcomes]
    assert values == [True, True, True]
