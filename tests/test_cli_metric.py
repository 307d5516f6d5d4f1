"""The command line in metres and 3-D, end to end on the tiny model: known points, saved
calibrations, PLY, normals, sidecars, video, batch, and every bad input of issue 12."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import plyfile
import pytest
from PIL import Image

from conftest import test_image
from depthlite import DepthEstimator, read_depth
from depthlite.cli.main import main
from depthlite.geometry.intrinsics import CameraSpec, resolve_intrinsics
from depthlite.geometry.pointcloud import backproject

SIZE = (60, 80)  # height, width
NEAR, FAR = 1.5, 6.0


@pytest.fixture(scope="module")
def estimator(converted_onnx: Path) -> DepthEstimator:
    return DepthEstimator(weights=converted_onnx, threads=1, progress=False)


def write_photo(path: Path, seed: int = 0, size: tuple[int, int] = SIZE, exif: bytes = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(test_image(seed, *size))
    if path.suffix == ".png":
        image.save(path)
    else:
        image.save(path, "JPEG", quality=95, exif=exif)
    return path


def extremes(depth: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    """(x, y) of the model's nearest and farthest pixels (largest and smallest inverse depth)."""
    near = np.unravel_index(int(np.argmax(depth)), depth.shape)
    far = np.unravel_index(int(np.argmin(depth)), depth.shape)
    return (int(near[1]), int(near[0])), (int(far[1]), int(far[0]))


def known_args(depth: np.ndarray) -> list[str]:
    (nx, ny), (fx, fy) = extremes(depth)
    return ["--known", f"{nx},{ny}={NEAR}", "--known", f"{fx},{fy}={FAR}"]


Cli = Callable[[list[str]], tuple[int, str]]


@pytest.fixture
def cli(converted_onnx: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    """``depthlite ARGS --weights <tiny model>``: (exit code, stderr)."""

    def run(args: list[str]) -> tuple[int, str]:
        code = main([*args, "--weights", str(converted_onnx)])
        return code, capsys.readouterr().err

    return run


def shot(estimator: DepthEstimator, path: Path) -> tuple[Path, np.ndarray]:
    """A test photo at ``path`` and the model's depth of it."""
    photo = write_photo(path)
    return photo, estimator.predict(photo).depth


def assert_known_distances(metres: np.ndarray, depth: np.ndarray, rel: float) -> None:
    """The metres at the nearest and farthest pixels of ``depth`` are the known ones."""
    (nx, ny), (fx, fy) = extremes(depth)
    assert metres[ny, nx] == pytest.approx(NEAR, rel=rel)
    assert metres[fy, fx] == pytest.approx(FAR, rel=rel)


def test_two_known_distances_give_a_metric_map(
    tmp_path: Path, cli: Cli, estimator: DepthEstimator
) -> None:
    photo, depth = shot(estimator, tmp_path / "photo.jpg")
    args = ["predict", str(photo), "-f", "metric,metric_pfm", *known_args(depth)]
    code, err = cli(args)
    assert code == 0, err
    metres = np.load(tmp_path / "photo_metric.npy")
    assert metres.dtype == np.float32 and metres.shape == SIZE
    assert_known_distances(metres, depth, rel=1e-4)
    # Every pixel lies between the nearest and the farthest: the fit is monotone.
    assert np.nanmin(metres) == pytest.approx(NEAR, rel=1e-4)
    assert np.nanmax(metres) == pytest.approx(FAR, rel=1e-4)
    pfm, _ = read_depth(tmp_path / "photo_metric.pfm")
    np.testing.assert_array_equal(pfm, metres)
    # The fit and each point's residual, one short table on stderr.
    assert "calibration 1/d = s*v + t" in err and "scale_shift, least squares" in err
    (nx, ny), _ = extremes(depth)
    assert f"{nx:>7} {ny:>6}" in err and "+0.000" in err.replace("-0.000", "+0.000")


def test_a_saved_calibration_is_reused(tmp_path: Path, cli: Cli, estimator: DepthEstimator) -> None:
    photo, depth = shot(estimator, tmp_path / "a.jpg")
    cam = tmp_path / "cam.json"
    first = ["predict", str(photo), "-f", "metric", "-o", str(tmp_path / "1"), "-q"]
    code, _ = cli([*first, *known_args(depth), "--save-calibration", str(cam)])
    assert code == 0
    saved = json.loads(cam.read_text())
    assert saved["model"] == "midas_v21_small_256" and len(saved["points"]) == 2
    assert saved["input_size"] == [192, 256]
    again = ["predict", str(photo), "-f", "metric", "-o", str(tmp_path / "2"), "-q"]
    code, _ = cli([*again, "--calibration", str(cam)])
    assert code == 0
    np.testing.assert_array_equal(
        np.load(tmp_path / "1" / "a_metric.npy"), np.load(tmp_path / "2" / "a_metric.npy")
    )


def test_ply_and_normals_with_a_given_field_of_view(
    tmp_path: Path, cli: Cli, estimator: DepthEstimator
) -> None:
    photo, depth = shot(estimator, tmp_path / "p.png")
    formats = "ply,normals,normals_npy,metric"
    args = ["predict", str(photo), "-f", formats, "--fov", "70", *known_args(depth), "-q"]
    code, err = cli(args)
    assert code == 0, err
    ply = plyfile.PlyData.read(str(tmp_path / "p.ply"))
    vertices = ply["vertex"].data
    assert any("units: metres" in c for c in ply.comments)
    metres = np.load(tmp_path / "p_metric.npy")
    intr = resolve_intrinsics(SIZE[1], SIZE[0], CameraSpec(fov=70.0))
    expected = backproject(metres, intr).reshape(-1, 3)
    got = np.stack([vertices["x"], vertices["y"], vertices["z"]], axis=1)
    assert 0 < len(got) <= SIZE[0] * SIZE[1]
    (nx, ny), _ = extremes(depth)
    nearest = expected[ny * SIZE[1] + nx]
    assert nearest[2] == pytest.approx(-NEAR, rel=1e-4)
    assert np.abs(got - nearest).sum(axis=1).min() < 1e-5  # that point is in the cloud
    normals = np.load(tmp_path / "p_normals.npy")
    assert normals.shape == (*SIZE, 3)
    norm = np.linalg.norm(normals, axis=2)
    np.testing.assert_allclose(norm[np.isfinite(norm)], 1.0, rtol=1e-5)
    png = cv2.imread(str(tmp_path / "p_normals.png"))
    assert png.shape == (*SIZE, 3) and png.dtype == np.uint8


def test_ply_focal_length_from_exif_or_a_stated_default(
    tmp_path: Path, cli: Cli, caplog: pytest.LogCaptureFixture
) -> None:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = 28
    with_exif = write_photo(tmp_path / "e.jpg", exif=exif.tobytes())
    code, err = cli(["predict", str(with_exif), "-f", "ply"])
    assert code == 0, err
    ply = plyfile.PlyData.read(str(tmp_path / "e.ply"))
    assert any("EXIF FocalLengthIn35mmFilm" in c for c in ply.comments)
    assert any("relative units" in c for c in ply.comments)  # no calibration: said so
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    plain = write_photo(tmp_path / "n.jpg")
    code, err = cli(["predict", str(plain), "-f", "ply"])
    assert code == 0
    (warning,) = [r.message for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning.startswith(f"{plain}: no focal length in EXIF; assuming a 60 degree")


def test_the_exif_is_read_only_for_3d_outputs(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from depthlite import estimator as estimator_module

    calls: list[object] = []
    real = estimator_module.read_exif_focal
    monkeypatch.setattr(estimator_module, "read_exif_focal", lambda *a: calls.append(a) or real(*a))
    photo = write_photo(tmp_path / "x.jpg")
    assert cli(["predict", str(photo), "-f", "color,png16,npy", "-q"])[0] == 0
    assert calls == []  # the normal path pays nothing
    assert cli(["predict", str(photo), "-f", "ply", "--fov", "60", "-q"])[0] == 0
    assert calls == []  # a focal length was given
    assert cli(["predict", str(photo), "-f", "normals", "-q"])[0] == 0
    assert len(calls) == 1


def test_png16_has_a_sidecar_by_default_and_reads_back_in_metres(
    tmp_path: Path, cli: Cli, estimator: DepthEstimator
) -> None:
    photo, depth = shot(estimator, tmp_path / "s.jpg")
    out = tmp_path / "out"
    code, _ = cli(["predict", str(photo), "-o", str(out), "-f", "png16,npy", *known_args(depth),
                   "-q"])  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["s.json", "s.npy", "s_depth16.png"]
    side = json.loads((out / "s.json").read_text())
    assert side["calibration"]["fit"] == "scale_shift"
    metres, facts = read_depth(out / "s_depth16.png")
    assert facts["unit"] == "m"
    assert_known_distances(metres, depth, rel=1e-3)
    code, _ = cli(["predict", str(photo), "-o", str(tmp_path / "no"), "-f", "png16",
                   "--no-sidecar", "-q"])  # fmt: skip
    assert code == 0 and [p.name for p in (tmp_path / "no").iterdir()] == ["s_depth16.png"]


def test_ply_from_stdin(tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    photo = write_photo(tmp_path / "x.jpg")

    class Stdin:
        buffer = io.BytesIO(photo.read_bytes())

    monkeypatch.setattr("sys.stdin", Stdin)
    code, err = cli(["predict", "-", "-o", str(tmp_path / "o"), "-f", "ply", "--focal-px", "90"])
    assert code == 0, err
    ply = plyfile.PlyData.read(str(tmp_path / "o" / "stdin.ply"))
    assert any("fx=90 " in c for c in ply.comments)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "metric output is in metres"),
        (["--known", "1,1=2"], "one --known point cannot fix"),
        (["--known", "1,1=2", "--known", "2,2=3", "--calibration", "x.json"], "not both"),
        (["--fit", "scale"], "--fit needs --known"),
        (["--save-calibration", "c.json"], "--save-calibration needs --known"),
        (["--calibration", "missing.json"], "cannot read calibration"),
    ],
)
def test_usage_errors_exit_2_before_any_work(
    tmp_path: Path, cli: Cli, extra: list[str], message: str
) -> None:
    photo = write_photo(tmp_path / "u.jpg")
    code, err = cli(["predict", str(photo), "-f", "metric", *extra])
    assert code == 2, err
    assert message in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["u.jpg"]  # nothing written


@pytest.mark.parametrize(
    ("known", "message"),
    [
        ("412,300", "expected X,Y=METRES"),
        ("a,b=1", "expected X,Y=METRES"),
        ("4,3=0", "positive number of metres"),
        ("4,3=-2", "positive number of metres"),
    ],
)
def test_malformed_known_points_are_usage_errors(
    converted_onnx: Path, capsys: pytest.CaptureFixture[str], known: str, message: str
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["predict", "x.jpg", "--known", known, "--weights", str(converted_onnx)])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_calibration_of_another_model_is_refused(
    tmp_path: Path, cli: Cli, estimator: DepthEstimator
) -> None:
    photo = write_photo(tmp_path / "a.jpg")
    cal = estimator.predict(photo)
    fitted = cal.calibrate([*_points(cal.depth)])
    data = fitted.to_dict() | {"model": "dpt_large_384"}
    (tmp_path / "other.json").write_text(json.dumps(data))
    code, err = cli(["predict", str(photo), "--calibration", str(tmp_path / "other.json")])
    assert code == 2 and "fitted for model dpt_large_384" in err


def _points(depth: np.ndarray) -> list:
    from depthlite.geometry.calibration import KnownPoint

    (nx, ny), (fx, fy) = extremes(depth)
    return [KnownPoint(nx, ny, NEAR), KnownPoint(fx, fy, FAR)]


def test_points_outside_one_image_fail_that_image_only(
    tmp_path: Path, cli: Cli, estimator: DepthEstimator
) -> None:
    big = write_photo(tmp_path / "in" / "big.jpg", 1, (60, 80))
    write_photo(tmp_path / "in" / "small.jpg", 2, (20, 30))
    # Both points right of x = 30: inside the big image only.
    (nx, ny), (fx, fy) = extremes(estimator.predict(big).depth[:, 30:])
    known = ["--known", f"{nx + 30},{ny}={NEAR}", "--known", f"{fx + 30},{fy}={FAR}"]
    args = ["predict", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-f", "metric"]
    code, err = cli([*args, *known])
    assert code == 1
    assert f"small.jpg: known point {nx + 30},{ny} is outside the 30x20 image" in err
    assert "x must be in 0..29 and y in 0..19" in err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["big_metric.npy"]
    assert "1 image(s) done, 1 file(s) written, 1 failed" in err


def test_a_degenerate_fit_says_why(tmp_path: Path, cli: Cli) -> None:
    photo = write_photo(tmp_path / "d.jpg")
    code, err = cli(["predict", str(photo), "-f", "metric", "--known", "7,7=2", "--known",
                     "7,7=5"])  # fmt: skip
    assert code == 1
    assert "same model value" in err and "pick points at clearly different depths" in err


def test_save_calibration_needs_one_image(tmp_path: Path, cli: Cli) -> None:
    write_photo(tmp_path / "a.jpg")
    write_photo(tmp_path / "b.jpg", 1)
    args = ["predict", str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg"), "--known", "1,1=2",
            "--known", "9,9=4", "--save-calibration", str(tmp_path / "c.json")]  # fmt: skip
    code, err = cli(args)
    assert code == 2 and "exactly one input image, got 2" in err


# ---------------------------------------------------------------- video and batch


def test_video_known_points_fit_the_first_frame(
    video_clip: Path, tmp_path: Path, cli: Cli, estimator: DepthEstimator
) -> None:
    from depthlite.video.ffmpeg import FrameReader, probe

    first = FrameReader(video_clip, probe(video_clip)).read()
    depth = estimator.predict(first).depth
    cam = tmp_path / "cam.json"
    args = ["video", str(video_clip), "-o", str(tmp_path / "d.npz"), "--max-frames", "3"]
    code, err = cli([*args, *known_args(depth), "--save-calibration", str(cam)])  # fmt: skip
    assert code == 0, err
    assert "(first frame): calibration 1/d = s*v + t" in err
    with np.load(tmp_path / "d.npz") as data:
        metres = data["depth"].astype(np.float32)
        assert (str(data["unit"]), str(data["kind"])) == ("m", "metric_depth")
        assert json.loads(str(data["calibration"]))["scale"] == json.loads(cam.read_text())["scale"]
    assert_known_distances(metres[0], depth, rel=2e-3)  # float16
    (nx, ny), _ = extremes(depth)
    frames = tmp_path / "frames"
    code, err = cli(["video", str(video_clip), "-o", str(frames), "--max-frames", "2", "-q",
                     "--normalize", "per-frame", "--calibration", str(cam)])  # fmt: skip
    assert code == 0, err
    metres0, facts = read_depth(frames / "frame_000001.png")
    assert facts["unit"] == "m"
    assert metres0[ny, nx] == pytest.approx(NEAR, rel=1e-3)


def test_batch_calibrates_every_image_and_writes_sidecars(
    tmp_path: Path, cli: Cli, estimator: DepthEstimator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEPTHLITE_QUEUE", raising=False)
    # A fixed camera: the same view twice, so the same pixels have the same distances.
    photo = write_photo(tmp_path / "in" / "a.jpg")
    (tmp_path / "in" / "b.jpg").write_bytes(photo.read_bytes())
    depth = estimator.predict(photo).depth
    out = tmp_path / "out"
    args = ["batch", str(tmp_path / "in"), "-o", str(out), "-f", "metric,png16", "-q"]
    code, err = cli([*args, *known_args(depth)])
    assert code == 0, err
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{s}{e}" for s in "ab" for e in (".json", "_depth16.png",
                                                               "_metric.npy"))  # fmt: skip
    for stem in "ab":
        assert_known_distances(np.load(out / f"{stem}_metric.npy"), depth, rel=1e-4)
