"""The exact resize on selected rows (and in row bands), and the process-wide helper pool."""

from __future__ import annotations

import os
import threading

import cv2
import numpy as np
import pytest

from depthlite import parallel, resample

# (height, width) -> (network height, width): downscales as photos get them, odd sizes,
# upscales (rows repeat) and one-pixel edge cases.
_SIZES = [
    ((1080, 1920), (128, 256)),
    ((1080, 1920), (256, 256)),
    ((480, 640), (192, 256)),
    ((333, 517), (96, 128)),
    ((100, 50), (256, 128)),
    ((7, 9), (3, 30)),
    ((1, 1), (4, 4)),
    ((5, 3), (1, 1)),
]


def _random_sizes(count: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    rng = np.random.default_rng(7)
    return [
        ((int(rng.integers(1, 900)), int(rng.integers(1, 900))),
         (int(rng.integers(1, 400)), int(rng.integers(1, 400))))
        for _ in range(count)
    ]  # fmt: skip


@pytest.mark.parametrize(("size", "target"), _SIZES + _random_sizes(40))
@pytest.mark.parametrize("bands", [1, 2])
def test_row_selected_resize_is_bit_identical_to_cv2(
    size: tuple[int, int], target: tuple[int, int], bands: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resample, "_BANDS", bands)
    monkeypatch.setattr(resample, "usable_cores", lambda: 2)
    monkeypatch.setattr(parallel, "idle_core", lambda: True)
    rng = np.random.default_rng(size[0] * 1000 + size[1])
    img = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    expected = cv2.resize(img / 255.0, target[::-1], interpolation=cv2.INTER_CUBIC)
    assert np.array_equal(resample.resize_float64(img, *target), expected)
    img16 = rng.integers(0, 65536, (*size, 3), dtype=np.uint16)
    expected16 = cv2.resize(img16 / 65535.0, target[::-1], interpolation=cv2.INTER_CUBIC)
    assert np.array_equal(resample.resize_float64(img16, *target), expected16)


def test_cubic_taps_pick_four_rows_per_output_and_weights_sum_to_one() -> None:
    taps, weights = resample.cubic_taps(1080, 128)
    assert taps.shape == weights.shape == (128, 4)
    assert taps.min() >= 0 and taps.max() <= 1079
    assert np.allclose(weights.sum(axis=1), 1.0, atol=1e-6)
    # A downscale by 8.4 touches only about half the rows: the saving this module is for.
    assert len(np.unique(taps)) == 512


def test_fast_resize_is_the_exact_one_within_float32_rounding() -> None:
    img = np.random.default_rng(3).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    exact = resample.resize_float64(img, 192, 256)
    fast = resample.resize_float32(img, 192, 256)
    assert fast.shape == exact.shape and fast.dtype == np.float32
    assert np.abs(fast - exact).max() <= 1e-5
    assert not np.array_equal(fast, exact.astype(np.float32))  # it is not the exact path


def test_network_input_is_resize_normalise_transpose_cast_bit_for_bit() -> None:
    img = np.random.default_rng(4).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    steps = (resample.resize_float64(img, 128, 256) - np.asarray(mean)) / np.asarray(std)
    expected = np.ascontiguousarray(np.transpose(steps, (2, 0, 1))).astype(np.float32)[None]
    assert np.array_equal(resample.network_input(img, 128, 256, mean, std), expected)
    plain = resample.resize_float64(img, 37, 61).transpose(2, 0, 1).astype(np.float32)[None]
    assert np.array_equal(resample.network_input(img, 37, 61), plain)
    tall = np.random.default_rng(5).integers(0, 256, (2000, 300, 3), dtype=np.uint8)
    blocks = resample.resize_float64(tall, 300, 64).transpose(2, 0, 1).astype(np.float32)[None]
    assert np.array_equal(resample.network_input(tall, 300, 64), blocks)  # 3 row blocks


@pytest.fixture
def idle(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a quiet machine, whatever the load while the tests run."""
    monkeypatch.setattr(parallel, "idle_core", lambda: True)


@pytest.mark.usefixtures("idle")
def test_run_split_runs_every_part_and_returns_them_in_order() -> None:
    seen: list[str] = []
    helper_ran = threading.Event()

    def part(i: int) -> int:
        seen.append(threading.current_thread().name)
        if threading.current_thread().name.startswith("depthlite-helper"):
            helper_ran.set()
        return i

    def first() -> int:
        # The caller's own share lasts until a helper has run one: the split really happened.
        assert helper_ran.wait(timeout=30)
        return part(0)

    results = parallel.run_split(first, [lambda i=i: part(i) for i in (1, 2, 3)])
    assert results == [0, 1, 2, 3]
    assert threading.current_thread().name in seen


def test_with_no_idle_core_every_part_runs_on_the_calling_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(parallel, "idle_core", lambda: False)
    names = parallel.run_split(
        lambda: threading.current_thread().name,
        [lambda: threading.current_thread().name] * 3,
    )
    assert names == [threading.current_thread().name] * 4


@pytest.mark.usefixtures("idle")
def test_parts_no_helper_has_started_are_taken_back_by_the_caller() -> None:
    release = threading.Event()
    blockers = [parallel.shared_pool().submit(release.wait) for _ in range(parallel.usable_cores())]
    try:  # every helper is blocked: the caller must run both parts itself, not wait
        names = parallel.run_split(lambda: 0, [lambda: threading.current_thread().name])
        assert names == [0, threading.current_thread().name]
    finally:
        release.set()
        for blocker in blockers:
            blocker.result(timeout=30)


def test_idle_core_reads_the_load_average(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "usable_cores", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.2, 0.0, 0.0))
    assert parallel.idle_core()
    monkeypatch.setattr(os, "getloadavg", lambda: (1.7, 0.0, 0.0))
    assert not parallel.idle_core()


@pytest.mark.usefixtures("idle")
def test_run_split_from_a_helper_thread_runs_inline_instead_of_deadlocking() -> None:
    workers = parallel.usable_cores()
    # Every helper busy with a job that itself splits: waiting on the pool would never end.
    nested = [
        parallel.shared_pool().submit(parallel.run_split, lambda: 1, [lambda: 2])
        for _ in range(workers + 1)
    ]
    assert [job.result(timeout=30) for job in nested] == [[1, 2]] * (workers + 1)


def test_pool_is_one_per_process_sized_by_the_cores() -> None:
    pool = parallel.shared_pool()
    assert parallel.shared_pool() is pool
    assert pool._max_workers == parallel.usable_cores()


@pytest.mark.usefixtures("idle")
def test_a_forked_child_gets_its_own_working_pool() -> None:
    parallel.shared_pool().submit(int).result()  # the parent's pool has a thread at fork
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the inherited pool has no threads; a new one must run the job
        try:
            ok = parallel.run_split(lambda: 1, [lambda: 2]) == [1, 2]
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1" and status == 0


@pytest.mark.parametrize("bands", [False, True])
def test_banded_colour_levels_are_the_official_formula(
    bands: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from depthlite import normalize
    from depthlite.colorize import normalize_minmax

    monkeypatch.setattr(normalize, "_BANDS_ON", bands)
    monkeypatch.setattr(parallel, "idle_core", lambda: True)
    depth = np.random.default_rng(5).random((1080, 1000), dtype=np.float32) * 3 - 1
    lo, hi = depth.min(), depth.max()
    # write_depth's arithmetic, in the depth's dtype with a truncating cast, written out whole.
    expected8 = (np.float32(255) * (depth - lo) / (hi - lo)).astype(np.uint8)
    assert np.array_equal(normalize_minmax(depth, 1), expected8)
    clipped = np.clip(np.float32(65535) * (depth - 0.0) / np.float32(1.5), 0, 65535)
    assert np.array_equal(normalize.scale_levels(depth, 0.0, 1.5, 2), clipped.astype(np.uint16))
