"""``depthlite video`` end to end on generated clips (FFmpeg from imageio-ffmpeg)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import make_clip
from depthlite.cli.main import main
from depthlite.colorize import normalize_minmax
from depthlite.errors import InvalidOptionError, ToolUnavailableError, VideoDecodeError
from depthlite.estimator import DepthEstimator
from depthlite.normalize import NormalizerOptions
from depthlite.video import VIDEO_FORMATS, VideoOptions, output_format, probe, process_video
from depthlite.video.ffmpeg import FrameReader, ffmpeg_executable

FPS = 10
SECONDS = 2
SIZE = (96, 64)  # width, height: small, so the network runs fast


@pytest.fixture(scope="module")
def clip(video_clip: Path) -> Path:
    return video_clip


@pytest.fixture(scope="module")
def estimator(converted_onnx: Path) -> DepthEstimator:
    return DepthEstimator(weights=converted_onnx, progress=False)


def _frames(path: Path) -> list[np.ndarray]:
    info = probe(path)
    reader = FrameReader(path, info)
    frames = []
    while (frame := reader.read()) is not None:
        frames.append(frame)
    return frames


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_mp4_keeps_frames_size_duration_and_audio(
    clip: Path, converted_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "depth.mp4"
    code = main(["video", str(clip), "-o", str(out), "--weights", str(converted_onnx)])
    assert code == 0
    info = probe(out)
    assert (info.width, info.height) == SIZE
    assert info.codec == "h264"
    assert info.has_audio
    assert info.duration == pytest.approx(SECONDS, abs=0.15)
    assert info.fps == FPS
    assert len(_frames(out)) == SECONDS * FPS
    stderr = capsys.readouterr().err
    assert "20 frames" in stderr
    assert "libx264, audio kept" in stderr
    assert _leftovers(tmp_path) == []


def test_side_by_side_doubles_the_width_and_shows_the_input(
    clip: Path, converted_onnx: Path, tmp_path: Path
) -> None:
    out = tmp_path / "side.mp4"
    args = ["video", str(clip), "-o", str(out), "--side", "--max-frames", "3", "-q"]
    assert main([*args, "--weights", str(converted_onnx)]) == 0
    frames = _frames(out)
    assert len(frames) == 3
    assert frames[0].shape == (SIZE[1], 2 * SIZE[0], 3)
    source = _frames(clip)[0].astype(np.int16)
    # Left half is the input (through two lossy encodes: compare loosely).
    assert np.abs(frames[0][:, : SIZE[0]].astype(np.int16) - source).mean() < 12


def test_start_end_and_max_frames(clip: Path, estimator: DepthEstimator, tmp_path: Path) -> None:
    trimmed = process_video(estimator, clip, tmp_path / "a.npz", VideoOptions(start=0.5, end=1.5))
    assert trimmed.frames == 10
    capped = process_video(estimator, clip, tmp_path / "b.npz", VideoOptions(max_frames=4))
    assert capped.frames == 4


def test_npz_holds_the_raw_depth_of_each_frame(
    clip: Path, estimator: DepthEstimator, tmp_path: Path
) -> None:
    out = tmp_path / "depth.npz"
    report = process_video(estimator, clip, out, VideoOptions(max_frames=5))
    assert report.fmt == "npz"
    with np.load(out) as data:
        depth, fps, times = data["depth"], data["fps"], data["timestamps"]
    assert depth.shape == (5, SIZE[1], SIZE[0])
    assert depth.dtype == np.float16
    assert float(fps) == FPS
    np.testing.assert_allclose(times, np.arange(5) / FPS)
    frames = _frames(clip)
    for index in (0, 4):
        expected = estimator.predict(frames[index]).depth
        np.testing.assert_allclose(depth[index], expected, rtol=2e-3, atol=1e-3)


def test_png16_per_frame_mode_is_the_official_scaling(
    clip: Path, estimator: DepthEstimator, converted_onnx: Path, tmp_path: Path
) -> None:
    import cv2

    out = tmp_path / "frames"
    args = ["video", str(clip), "-o", str(out), "--normalize", "per-frame", "--max-frames", "3"]
    assert main([*args, "-q", "--weights", str(converted_onnx)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["frame_000001.png", "frame_000002.png", "frame_000003.png"]
    frames = _frames(clip)
    for index, name in enumerate(names):
        written = cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED)
        assert written.dtype == np.uint16
        expected = normalize_minmax(estimator.predict(frames[index]).depth, bits=2)
        np.testing.assert_array_equal(written, expected)


def test_png16_refuses_a_folder_that_has_files(
    clip: Path, converted_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    args = ["video", str(clip), "-o", str(tmp_path), "-f", "png16"]
    assert main([*args, "--weights", str(converted_onnx)]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_video_without_audio(converted_onnx: Path, tmp_path: Path) -> None:
    silent = make_clip(tmp_path / "silent.mp4", audio=False, seconds=1)
    out = tmp_path / "out.mp4"
    assert main(["video", str(silent), "-o", str(out), "-q", "--weights", str(converted_onnx)]) == 0
    assert not probe(out).has_audio
    assert len(_frames(out)) == FPS


@pytest.mark.parametrize("damage", ["truncated", "garbled", "not_a_video"])
def test_damaged_input_stops_with_a_message_and_leaves_nothing(
    clip: Path,
    converted_onnx: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    damage: str,
) -> None:
    data = clip.read_bytes()
    bad = tmp_path / "in" / "bad.mp4"
    bad.parent.mkdir()
    if damage == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif damage == "garbled":
        garbled = bytearray(data)
        for pos in range(len(data) // 3, len(data) - 200, 97):
            garbled[pos : pos + 40] = bytes(40)
        bad.write_bytes(bytes(garbled))
    else:
        bad.write_text("hello, I am a text file\n")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "depth.mp4"
    code = main(["video", str(bad), "-o", str(out), "-q", "--weights", str(converted_onnx)])
    assert code == 1
    err = capsys.readouterr().err
    assert "bad.mp4" in err
    assert "video" in err
    assert list(out_dir.iterdir()) == []  # neither the output nor a temporary file


def test_missing_input_and_bad_times(clip: Path, estimator: DepthEstimator, tmp_path: Path) -> None:
    with pytest.raises(VideoDecodeError, match="no such file"):
        process_video(estimator, tmp_path / "nope.mp4", tmp_path / "o.mp4")
    with pytest.raises(InvalidOptionError, match="start"):
        VideoOptions(start=2.0, end=1.0)
    with pytest.raises(InvalidOptionError, match="past the end"):
        process_video(estimator, clip, tmp_path / "o.mp4", VideoOptions(start=30.0))
    assert list(tmp_path.iterdir()) == []


def test_output_format_from_the_name(tmp_path: Path) -> None:
    assert output_format(tmp_path / "a.MP4", None) == "mp4"
    assert output_format(tmp_path / "a.npz", None) == "npz"
    assert output_format(tmp_path / "frames", None) == "png16"
    assert output_format(tmp_path / "a.bin", "npz") == "npz"
    with pytest.raises(InvalidOptionError, match="--format"):
        output_format(tmp_path / "a.gif", None)
    assert set(VIDEO_FORMATS) == {"mp4", "png16", "npz"}


def test_missing_ffmpeg_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, clip: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("DEPTHLITE_FFMPEG", str(tmp_path / "no-ffmpeg"))
    ffmpeg_executable.cache_clear()
    try:
        with pytest.raises(ToolUnavailableError, match="DEPTHLITE_FFMPEG"):
            probe(clip)
    finally:
        ffmpeg_executable.cache_clear()


def test_parallel_inference_keeps_frame_order(
    clip: Path, converted_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from depthlite.video import pipeline

    monkeypatch.setattr(pipeline, "default_threads", lambda: 3)
    single = DepthEstimator(weights=converted_onnx, threads=1, progress=False)
    assert pipeline.inference_workers(single) == 3
    out = tmp_path / "ordered.npz"
    report = process_video(single, clip, out, VideoOptions(max_frames=12))
    assert report.frames == 12
    with np.load(out) as data:
        depth = data["depth"]
    frames = _frames(clip)
    for index in range(12):
        expected = single.predict(frames[index]).depth
        np.testing.assert_allclose(depth[index], expected, rtol=2e-3, atol=1e-3)


@pytest.mark.parametrize("threads_workers", [(2, 1), (1, 1), (2, 2)])
def test_frames_in_flight_on_every_core_keep_their_bands_on_their_thread(
    clip: Path,
    converted_onnx: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    threads_workers: tuple[int, int],
) -> None:
    """As in ``depth_files``: one frame in the network per core leaves no core idle for the
    other stages' row bands, so each thread runs its own (``parallel.one_core_per_image``);
    so does a 1-thread session (``--threads 1``: one core)."""
    from depthlite import parallel

    threads, workers = threads_workers
    monkeypatch.setattr(parallel, "usable_cores", lambda: 2)
    estimator = DepthEstimator(weights=converted_onnx, threads=threads, progress=False)
    seen: list[bool] = []

    def infer(x: np.ndarray) -> np.ndarray:
        seen.append(parallel.runs_bands_itself())
        return estimator.infer(x)

    report = process_video(
        estimator, clip, tmp_path / "o.npz", VideoOptions(max_frames=6), infer=infer,
        workers=workers,
    )  # fmt: skip
    assert report.frames == 6
    assert seen == [threads == 1 or workers == 2] * 6  # 2 workers: one frame per core


def test_odd_frame_sizes_are_padded_for_h264(converted_onnx: Path, tmp_path: Path) -> None:
    from depthlite.video.ffmpeg import ffmpeg_executable

    odd = tmp_path / "odd.mkv"  # FFV1 takes any size, unlike H.264 in yuv420p
    args = [ffmpeg_executable(), "-v", "error", "-f", "lavfi"]
    args += ["-i", "testsrc2=size=96x64:rate=10:duration=0.5", "-vf", "scale=95:63"]
    args += ["-pix_fmt", "yuv444p", "-c:v", "ffv1", str(odd)]
    subprocess.run(args, check=True)
    assert (probe(odd).width, probe(odd).height) == (95, 63)
    out = tmp_path / "odd.mp4"
    assert main(["video", str(odd), "-o", str(out), "-q", "--weights", str(converted_onnx)]) == 0
    info = probe(out)
    assert (info.width, info.height) == (96, 64)
    assert len(_frames(out)) == 5


def _children() -> list[int]:
    import os

    me = os.getpid()
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                kids.append(int(entry))
    return kids


def test_stopping_before_the_first_frame_leaves_no_process_or_file(
    clip: Path, estimator: DepthEstimator, tmp_path: Path
) -> None:
    class StopError(Exception):
        pass

    def progress(done: int, expected: int | None) -> None:
        raise StopError

    before = _children()
    with pytest.raises(StopError):
        process_video(estimator, clip, tmp_path / "out.mp4", VideoOptions(), progress)
    assert list(tmp_path.iterdir()) == []
    deadline = time.monotonic() + 5
    while set(_children()) - set(before):
        assert time.monotonic() < deadline, "FFmpeg children left running"
        time.sleep(0.05)


def test_a_metric_model_keeps_metres_raw_and_draws_near_bright(
    clip: Path, exported_model: Callable[[str], Path], tmp_path: Path
) -> None:
    model = "depth_anything_v2_metric_indoor_small"
    est = DepthEstimator(model, weights=exported_model(model), threads=1, progress=False)
    raw = process_video(est, clip, tmp_path / "m.npz", VideoOptions(max_frames=2))
    assert raw.frames == 2
    with np.load(tmp_path / "m.npz") as data:
        metres = data["depth"][0].astype(np.float32)
    expected = est.predict(_frames(clip)[0]).depth
    np.testing.assert_allclose(metres, expected, rtol=2e-3, atol=1e-2)
    assert metres.min() > 0 and metres.max() < 20.0  # the Hypersim head: sigmoid x 20 m
    options = VideoOptions(
        fmt="png16", max_frames=2, normalizer=NormalizerOptions(mode="per-frame")
    )
    process_video(est, clip, tmp_path / "frames", options)

    first = sorted((tmp_path / "frames").iterdir())[0]
    levels = cv2.imread(str(first), cv2.IMREAD_UNCHANGED)
    # Near is bright: the 16-bit levels are the official scaling of the negated metres.
    np.testing.assert_array_equal(levels, normalize_minmax(-expected, bits=2))
