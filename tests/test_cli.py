"""The command line: outputs, batches with bad files, exit codes, messages."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import MODEL, test_image
from depthlite import DepthEstimator
from depthlite.cli.main import main
from depthlite.imageio import read_pfm


def write_image(path: Path, seed: int = 0, size: tuple[int, int] = (60, 80)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), test_image(seed, *size)[..., ::-1])
    return path


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_predict_writes_the_colour_map_next_to_the_input(
    tmp_path: Path, converted_onnx: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = write_image(tmp_path / "photo.jpg")
    code, _, err = run(["predict", str(photo), "--weights", str(converted_onnx)], capsys)
    assert code == 0, err
    colour = cv2.imread(str(tmp_path / "photo_color.png"))
    assert colour.shape == (60, 80, 3)
    assert "1 image(s) done" in err


def test_every_format_into_an_output_folder(
    tmp_path: Path, converted_onnx: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shots = tmp_path / "shots"
    write_image(shots / "a.png", 1)
    write_image(shots / "b.jpg", 2, (50, 70))
    out = tmp_path / "out"
    code, _, err = run(
        [
            "predict",
            str(shots),
            "-o",
            str(out),
            "--format",
            "color,png16,npy,pfm,side",
            "--weights",
            str(converted_onnx),
            "--quiet",
        ],
        capsys,
    )
    assert code == 0, err
    assert err == ""  # --quiet
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        f"{stem}{suffix}"
        for stem in ("a", "b")
        # png16 brings its JSON sidecar by default
        for suffix in ("_color.png", "_depth16.png", ".npy", ".pfm", "_side.png", ".json")
    )
    expected = DepthEstimator(weights=converted_onnx).predict(shots / "a.png").depth
    np.testing.assert_array_equal(np.load(out / "a.npy"), expected)
    np.testing.assert_array_equal(read_pfm(out / "a.pfm"), expected)
    png16 = cv2.imread(str(out / "a_depth16.png"), cv2.IMREAD_UNCHANGED)
    assert png16.dtype == np.uint16 and png16.max() == 65535 and png16.min() == 0
    assert cv2.imread(str(out / "b_side.png")).shape == (50, 140, 3)


def test_a_bad_file_is_reported_and_the_batch_goes_on(
    tmp_path: Path, converted_onnx: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_image(tmp_path / "in" / "good.png")
    broken = tmp_path / "in" / "broken.jpg"
    broken.write_bytes(write_image(tmp_path / "x.jpg").read_bytes()[:300])
    text = tmp_path / "in" / "notes.png"
    text.write_text("hello")
    out = tmp_path / "out"
    code, _, err = run(
        [
            "predict",
            str(broken),
            str(good),
            str(text),
            str(tmp_path / "missing.jpg"),
            "-o",
            str(out),
            "--weights",
            str(converted_onnx),
        ],
        capsys,
    )
    assert code == 1
    lines = [line for line in err.splitlines() if line.startswith("depthlite: error:")]
    assert len(lines) == 3, err
    assert any("broken.jpg" in line for line in lines)
    assert any("notes.png" in line for line in lines)
    assert any("missing.jpg" in line for line in lines)
    assert (out / "good_color.png").exists()
    assert good.name.replace(".png", "_color.png") in {p.name for p in out.iterdir()}


def test_recursive_mirrors_sub_folders_and_globs_work(
    tmp_path: Path, converted_onnx: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_image(tmp_path / "in" / "top.png")
    write_image(tmp_path / "in" / "sub" / "deep.png")
    out = tmp_path / "out"
    code, _, err = run(
        [
            "predict",
            str(tmp_path / "in"),
            "-r",
            "-o",
            str(out),
            "-q",
            "--weights",
            str(converted_onnx),
        ],
        capsys,
    )
    assert code == 0, err
    assert (out / "top_color.png").exists() and (out / "sub" / "deep_color.png").exists()
    code, _, err = run(
        [
            "predict",
            str(tmp_path / "in" / "*.png"),
            "-o",
            str(tmp_path / "g"),
            "-q",
            "--weights",
            str(converted_onnx),
        ],
        capsys,
    )
    assert code == 0, err
    assert [p.name for p in (tmp_path / "g").iterdir()] == ["top_color.png"]


def test_stdin(
    tmp_path: Path,
    converted_onnx: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = write_image(tmp_path / "a.png").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, _, err = run(
        ["predict", "-", "-o", str(tmp_path / "out"), "-q", "--weights", str(converted_onnx)],
        capsys,
    )
    assert code == 0, err
    assert (tmp_path / "out" / "stdin_color.png").exists()


def test_too_many_pixels_is_refused_with_the_fix(
    tmp_path: Path, converted_onnx: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = write_image(tmp_path / "big.png", size=(100, 100))
    code, _, err = run(
        ["predict", str(photo), "--max-pixels", "5000", "--weights", str(converted_onnx)], capsys
    )
    assert code == 1
    assert "big.png" in err and "--max-pixels" in err


@pytest.mark.parametrize(
    "args",
    [
        ["predict", "x.jpg", "--format", "color,gif"],
        ["predict", "x.jpg", "--backend", "tensorrt"],
        ["predict", "x.jpg", "--threads", "0"],
        ["predict", "x.jpg", "--colormap", "rainbowz"],
        ["predict"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_unknown_model_lists_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = write_image(tmp_path / "a.png")
    code, _, err = run(["predict", str(photo), "--model", "midas_huge"], capsys)
    assert code == 2
    assert MODEL in err


def test_offline_without_weights_says_how_to_get_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = write_image(tmp_path / "a.png")
    code, _, err = run(["predict", str(photo)], capsys)
    assert code == 1
    assert "--weights" in err and "DEPTHLITE_OFFLINE" in err
    assert len(err.strip().splitlines()) == 1


def test_models_lists_known_models_and_the_cache(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["models"], capsys)
    assert code == 0
    assert MODEL in out and "not cached" in out and "cache:" in out


def test_convert_caches_a_verified_onnx(
    checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["convert", "--weights", str(checkpoint), "-q"], capsys)
    assert code == 0, err
    path = Path(out.strip())
    assert path.suffix == ".onnx" and path.exists()
    code, out, _ = run(["models"], capsys)
    assert path.name in out


def test_console_script_exit_codes(tmp_path: Path, converted_onnx: Path) -> None:
    exe = Path(sys.executable).with_name("depthlite")
    photo = write_image(tmp_path / "a.png")
    ok = subprocess.run(
        [str(exe), "predict", str(photo), "-q", "--weights", str(converted_onnx)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        [str(exe), "predict", str(tmp_path / "nope.jpg"), "--weights", str(converted_onnx)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1 and "nope.jpg" in bad.stderr
    usage = subprocess.run(
        [str(exe), "predict", "--format", "bmp", "a.jpg"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert usage.returncode == 2


def test_same_stem_inputs_never_overwrite_each_other(
    tmp_path: Path, converted_onnx: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_image(tmp_path / "d" / "a.jpg", 1)
    write_image(tmp_path / "d" / "a.png", 2)
    write_image(tmp_path / "e" / "a.jpg", 3)
    code, _, err = run(
        [
            "predict",
            str(tmp_path / "d"),
            str(tmp_path / "e" / "a.jpg"),
            "-q",
            "--weights",
            str(converted_onnx),
        ],
        capsys,
    )
    assert code == 0, err
    colour = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*_color.png"))
    assert len(colour) == 3
    assert "e/a_color.png" in colour  # no rename where there is no clash
    # A second run over the folder does not process its own outputs.
    code, _, _ = run(
        ["predict", str(tmp_path / "d"), "-q", "--weights", str(converted_onnx)], capsys
    )
    assert code == 0
    assert len(list((tmp_path / "d").glob("*_color*.png"))) == 2


def test_one_image_never_imports_tqdm(tmp_path: Path, converted_onnx: Path) -> None:
    photo = write_image(tmp_path / "one.jpg")
    code = (
        "import sys\n"
        "from depthlite.cli.main import main\n"
        f"rc = main(['predict', {str(photo)!r}, '--weights', {str(converted_onnx)!r}])\n"
        "assert rc == 0, rc\n"
        "assert 'tqdm' not in sys.modules, 'tqdm imported for one image'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "one_color.png").is_file()


def test_batches_still_get_a_progress_bar() -> None:
    from depthlite.cli.common import ProgressBar

    assert not ProgressBar(1, quiet=False).shown
    assert not ProgressBar(2, quiet=True).shown
    bar = ProgressBar(2, quiet=False)
    assert bar.shown
    bar.close()


@pytest.mark.parametrize("count", [1, 2])
def test_predict_maps_the_heap_for_one_image_only(
    count: int, tmp_path: Path, converted_onnx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from depthlite.cli import predict

    # One image gains nothing from heap reuse (depthlite.memory.one_image_heap).
    asked: list[bool] = []
    monkeypatch.setattr(predict, "one_image_heap", lambda: asked.append(True) or True)
    photos = [str(write_image(tmp_path / f"p{i}.jpg")) for i in range(count)]
    assert main(["predict", *photos, "-q", "--weights", str(converted_onnx)]) == 0
    assert asked == ([True] if count == 1 else [])
    assert len(list(tmp_path.glob("*_color.png"))) == count
