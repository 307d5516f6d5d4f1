"""Many images overlapped: the same files as one after another, per-file errors, jobs, batch."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import test_image
from depthlite import DepthEstimator
from depthlite.cli.main import main
from depthlite.errors import InputError
from depthlite.imageio import OutputRequest
from depthlite.pipeline import ImageTask, Layout, depth_files


def _photos(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"p{index:02d}.png"
        # Two sizes: the network input changes shape between images.
        size = (48, 64) if index % 2 else (60, 44)
        cv2.imwrite(str(path), test_image(index, *size)[..., ::-1])
        paths.append(path)
    return paths


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def estimator(converted_onnx: Path) -> DepthEstimator:
    est = DepthEstimator(weights=converted_onnx, threads=1, progress=False)
    est.load()
    return est


def test_overlapped_outputs_are_byte_for_byte_the_sequential_ones(
    estimator: DepthEstimator, tmp_path: Path
) -> None:
    photos = _photos(tmp_path / "in", 7)
    request = OutputRequest(formats=("color", "npy"))
    results = {}
    for name, layout in (("seq", Layout(1, 1)), ("two", Layout(1, 2)), ("three", Layout(1, 3))):
        out = tmp_path / name
        tasks = [ImageTask(p.name, p, out, Path(p.stem)) for p in photos]
        with depth_files(estimator, tasks, request, layout) as outcomes:
            order = [o.index for o in outcomes if o.error is None]
        assert order == list(range(7))
        results[name] = _files(out)
    assert len(results["seq"]) == 14
    assert results["two"] == results["seq"]
    assert results["three"] == results["seq"]
    direct = estimator.predict(photos[3]).depth
    np.testing.assert_array_equal(np.load(tmp_path / "two" / "p03.npy"), direct)


@pytest.mark.parametrize(("formats", "held"), [(("color", "npy"), False), (("side",), True)])
def test_the_network_runs_without_the_photo_unless_an_output_shows_it(
    converted_onnx: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    formats: tuple[str, ...],
    held: bool,
) -> None:
    """A decoded 1080p photo is 6 MB held under the network's buffers; only "side" and "ply"
    read it after the network. The outputs are those of ``predict`` either way."""
    est = DepthEstimator(weights=converted_onnx, threads=1, progress=False)
    holding: list[bool] = []
    run_network = est.run_network

    def spy(prepared: object) -> np.ndarray:
        holding.append(prepared.has_image)  # type: ignore[attr-defined]
        return run_network(prepared)  # type: ignore[arg-type]

    monkeypatch.setattr(est, "run_network", spy)
    (photo,) = _photos(tmp_path / "in", 1)
    out = tmp_path / "out"
    request = OutputRequest(formats=formats)
    with depth_files(est, [ImageTask(photo.name, photo, out, Path(photo.stem))], request,
                     Layout(1, 1)) as outcomes:  # fmt: skip
        assert all(o.error is None for o in outcomes)
    assert holding == [held]
    if held:
        side = cv2.imread(str(out / "p00_side.png"))
        assert side.shape[1] == 2 * 44  # the photo beside its depth
        np.testing.assert_array_equal(side[:, :44, ::-1], test_image(0, 60, 44))
    else:
        np.testing.assert_array_equal(np.load(out / "p00.npy"), est.predict(photo).depth)


@pytest.mark.parametrize(
    ("layout", "splits"), [(Layout(2, 1), True), (Layout(1, 1), False), (Layout(1, 2), False)]
)
def test_images_in_flight_on_every_core_are_not_split_across_cores(
    estimator: DepthEstimator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    layout: Layout,
    splits: bool,
) -> None:
    """With one worker per core the other cores are busy with the other images: splitting an
    image's resize, colour map or deflate across them only adds hand-offs (1.57x -> 1.67x at
    two cores, docs/benchmarks.md). One worker of several threads keeps its bands on the idle
    cores; one of one thread (``--threads 1``) stays on one core."""
    from depthlite import parallel

    monkeypatch.setattr(parallel, "usable_cores", lambda: 2)
    monkeypatch.setattr(parallel, "idle_core", lambda: True)  # whatever the machine's load
    handed: list[str] = []
    pool = parallel.shared_pool()
    submit = pool.submit

    def counting(fn: object, *args: object) -> object:
        handed.append(threading.current_thread().name)
        return submit(fn, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(pool, "submit", counting)
    folder = tmp_path / "in"
    folder.mkdir()
    photos = []
    for index in range(3):  # 1.2 MP: large enough for every stage to split
        photos.append(folder / f"big{index}.png")
        cv2.imwrite(str(photos[-1]), test_image(index, 960, 1280)[..., ::-1])
    out = tmp_path / "out"
    tasks = [ImageTask(p.name, p, out, Path(p.stem)) for p in photos]
    request = OutputRequest(formats=("color", "png16"))
    with depth_files(estimator, tasks, request, layout) as outcomes:
        assert all(o.error is None for o in outcomes)
    assert bool(handed) is splits, handed
    assert len(list(out.glob("*_color.png"))) == 3


def test_a_failing_image_is_reported_alone_and_the_rest_is_written(
    estimator: DepthEstimator, tmp_path: Path
) -> None:
    photos = _photos(tmp_path / "in", 5)
    photos[2].write_bytes(b"not an image")
    out = tmp_path / "out"
    tasks = [ImageTask(p.name, p, out, Path(p.stem)) for p in photos]
    request = OutputRequest(formats=("color",))
    with depth_files(estimator, tasks, request, Layout(1, 2)) as outcomes:
        results = list(outcomes)
    assert [o.index for o in results] == list(range(5))
    assert [o.error is not None for o in results] == [False, False, True, False, False]
    assert isinstance(results[2].error, InputError) and "p02.png" in str(results[2].error)
    assert sorted(p.name for p in out.iterdir()) == [f"p{i:02d}_color.png" for i in (0, 1, 3, 4)]


def test_the_work_goes_through_the_given_run_function(
    estimator: DepthEstimator, tmp_path: Path
) -> None:
    """A server routes the work through its pool: one call per image, nothing bypasses it."""
    calls: list[str] = []
    lock = threading.Lock()

    def run(fn: object, *args: object) -> object:
        with lock:
            calls.append(getattr(fn, "__name__", "?"))
        return fn(*args)  # type: ignore[operator]

    photos = _photos(tmp_path / "in", 3)
    tasks = [ImageTask(p.name, p, tmp_path / "out", Path(p.stem)) for p in photos]
    request = OutputRequest(formats=("color",))
    with depth_files(estimator, tasks, request, Layout(1, 2), run=run) as outcomes:
        assert all(o.error is None for o in outcomes)
    assert calls == ["_image"] * 3


def test_predict_with_workers_writes_what_one_worker_writes(
    converted_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = _photos(tmp_path / "in", 5)
    broken = tmp_path / "in" / "p99.png"
    broken.write_bytes(photos[0].read_bytes()[:100])
    outputs = {}
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}"
        code = main(
            ["predict", str(tmp_path / "in"), "-o", str(out), "--weights", str(converted_onnx),
             "--threads", "1", "--workers", workers],
        )  # fmt: skip
        err = capsys.readouterr().err
        assert code == 1, err
        errors = [line for line in err.splitlines() if line.startswith("depthlite: error:")]
        assert len(errors) == 1 and "p99.png" in errors[0], err
        assert "5 image(s) done, 5 file(s) written, 1 failed" in err
        outputs[workers] = _files(out)
    assert len(outputs["1"]) == 5
    assert outputs["2"] == outputs["1"]


def test_batch_with_workers_writes_what_one_worker_writes(
    converted_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _photos(tmp_path / "in", 4)
    outputs = {}
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}"
        code = main(
            ["batch", str(tmp_path / "in"), "-o", str(out), "--local", "--quiet",
             "--weights", str(converted_onnx), "--workers", workers],
        )  # fmt: skip
        assert code == 0, capsys.readouterr().err
        outputs[workers] = _files(out)
    assert len(outputs["1"]) == 4
    assert outputs["2"] == outputs["1"]
