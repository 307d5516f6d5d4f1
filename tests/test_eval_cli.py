"""Evaluation datasets (manifests, folders, the motorcycle example) and ``depthlite eval`` end to
end (test_eval.py: the metrics and ground-truth files)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import random_depth, test_image
from depthlite import DepthEstimator
from depthlite.cli.main import main
from depthlite.errors import InputNotFoundError
from depthlite.evaluation import (
    MANIFEST_NAME,
    ManifestError,
    evaluate_dataset,
    evaluate_sample,
    load_dataset,
    read_ground_truth,
    write_motorcycle,
)
from depthlite.imageio import write_pfm

RELATIVE = "relative_inverse_depth"


# --- manifests and folders -----------------------------------------------------------------


def write_manifest(folder: Path, data: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MANIFEST_NAME
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_manifest_defaults_and_overrides(tmp_path: Path) -> None:
    write_manifest(
        tmp_path,
        {
            "version": 1,
            "defaults": {"kind": "depth", "scale": 0.001, "max_depth": 10},
            "samples": [
                {"image": "rgb/a.png", "gt": "depth/a.png"},
                {"image": "rgb/b.png", "gt": "b.pfm", "kind": "disparity", "scale": 1,
                 "focal_baseline": 50, "mask": "b_mask.png", "depth_cap": 7},
            ],
        },
    )  # fmt: skip
    dataset = load_dataset(tmp_path)
    assert dataset.problems == ()
    a, b = dataset.samples
    assert (a.name, a.image) == ("rgb/a.png", tmp_path / "rgb/a.png")
    assert a.gt == tmp_path / "depth/a.png"
    assert (a.kind, a.scale, a.max_depth, a.mask, a.depth_unit) == ("depth", 0.001, 10, None, "m")
    assert (b.kind, b.scale, b.focal_baseline, b.depth_cap) == ("disparity", 1, 50, 7)
    assert b.mask == tmp_path / "b_mask.png"
    assert load_dataset(tmp_path / MANIFEST_NAME).samples == dataset.samples


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{not json", r"not valid JSON \(line 1, column 2"),
        ([], "must be a JSON object"),
        ({"samples": []}, '"samples" must be a non-empty list'),
        ({"images": []}, 'unknown key "images"; the top-level keys are: version, defaults'),
        ({"version": 2, "samples": [{}]}, '"version" 2 is not supported'),
        ({"defaults": {"scael": 1}, "samples": [{}]}, 'defaults: unknown key "scael"'),
        ({"defaults": [], "samples": [{}]}, '"defaults" must be an object'),
    ],
)
def test_a_broken_manifest_stops_the_run(tmp_path: Path, data: object, message: str) -> None:
    path = write_manifest(tmp_path, data)
    with pytest.raises(ManifestError, match=message) as info:
        load_dataset(tmp_path)
    assert info.value.source == str(path)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"image": "a.png", "gt": "a.npy", "scael": 2}, 'unknown key "scael"; the keys are: image'),
        ({"image": "a.png"}, 'no "gt"'),
        ("a.png", "must be an object"),
        ({"image": "a.png", "gt": "a.npy", "kind": "inverse"}, '"kind" must be "depth" or'),
        ({"image": "a.png", "gt": "a.npy", "scale": -1}, '"scale" must be > 0'),
        ({"image": "a.png", "gt": "a.npy", "scale": "1/256"}, '"scale" must be a finite number'),
        ({"image": "a.png", "gt": "a.npy", "invalid": True}, '"invalid" must be a finite'),
        ({"image": "a.png", "gt": "a.png"}, 'a PNG ground truth needs "scale"'),
        ({"image": "a.png", "gt": "a.exr"}, "is not .npy, .pfm, .png"),
        ({"image": "a.png", "gt": "a.npy", "focal_baseline": 5}, "only apply to"),
        ({"image": "a.png", "gt": "a.npy", "min_depth": 5, "max_depth": 5}, "must be below"),
        ({"image": "", "gt": "a.npy"}, '"image" must be a non-empty string'),
    ],
)
def test_a_broken_sample_is_reported_and_the_others_kept(
    tmp_path: Path, entry: object, message: str
) -> None:
    good = {"image": "b.png", "gt": "b.npy"}
    write_manifest(tmp_path, {"samples": [good, entry, good]})
    dataset = load_dataset(tmp_path)
    assert len(dataset.samples) == 2
    (problem,) = dataset.problems
    assert isinstance(problem, ManifestError)
    assert "sample 2: " in str(problem)
    assert message in str(problem)


def test_a_folder_is_paired_by_file_names(tmp_path: Path) -> None:
    for stem in ("a", "b", "c", "d", "e"):
        cv2.imwrite(str(tmp_path / f"{stem}.png"), test_image(0, 8, 8))
    np.save(tmp_path / "a_depth.npy", np.ones((8, 8)))
    write_pfm(tmp_path / "b_disp.pfm", np.ones((8, 8), np.float32))
    cv2.imwrite(str(tmp_path / "d_depth.png"), np.ones((8, 8), np.uint16))
    np.save(tmp_path / "e_depth.npy", np.ones((8, 8)))
    np.save(tmp_path / "e_disp.npy", np.ones((8, 8)))
    (tmp_path / ".hidden.png").write_bytes(b"")
    dataset = load_dataset(tmp_path)
    assert [(s.name, s.gt.name, s.kind) for s in dataset.samples] == [
        ("a.png", "a_depth.npy", "depth"),
        ("b.png", "b_disp.pfm", "disparity"),
    ]
    problems = {Path(p.source or "").name: str(p) for p in dataset.problems}
    assert set(problems) == {"c.png", "d.png", "e.png"}  # d_depth.png is no image of its own
    assert "no ground truth: expected c_depth.npy|.pfm or c_disp.npy|.pfm" in problems["c.png"]
    assert 'needs its "scale"' in problems["d.png"]
    assert "several ground truths (e_depth.npy, e_disp.npy)" in problems["e.png"]


def test_an_empty_folder_or_a_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match=f"no images and no {MANIFEST_NAME}"):
        load_dataset(tmp_path)
    with pytest.raises(InputNotFoundError, match="no such dataset"):
        load_dataset(tmp_path / "nope")


# --- the motorcycle example (bundled in scikit-image's wheel: no network) ------------------


def test_the_motorcycle_example_is_written_with_metric_ground_truth(tmp_path: Path) -> None:
    manifest = write_motorcycle(tmp_path / "moto")
    (item,) = load_dataset(manifest).samples
    gt = read_ground_truth(item)
    assert gt.depth.shape == (500, 741)
    assert gt.unit == "m"
    # skimage marks 7.3 % of its disparities unknown (inf): 343,274 of 370,500 are valid.
    assert gt.valid_pixels == 343_274
    # Disparities span 7.19..59.91 px: Z = 994.978 * 0.193001 / (d + 31.086) = 2.11..5.02 m.
    assert np.nanmin(gt.depth) == pytest.approx(192.0317 / (59.9090 + 31.086), rel=1e-4)
    assert np.nanmax(gt.depth) == pytest.approx(192.0317 / (7.19136 + 31.086), rel=1e-4)


# --- the command line ----------------------------------------------------------------------


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def known_dataset(tmp_path: Path, converted_onnx: Path) -> tuple[Path, list[float]]:
    """Two images whose ground truth is the tiny model's own output after a known (s, t)."""
    est = DepthEstimator(weights=converted_onnx, threads=1, progress=False)
    folder = tmp_path / "data"
    folder.mkdir()
    samples = []
    scales = [2.0, 0.25]
    for number, scale in enumerate(scales):
        cv2.imwrite(str(folder / f"im{number}.png"), test_image(number, 48, 64)[..., ::-1])
        prediction = est.predict(folder / f"im{number}.png").depth.astype(np.float64)
        shift = 0.5 - scale * prediction.min()  # every depth positive
        np.save(folder / f"im{number}_gt.npy", 1.0 / (scale * prediction + shift))
        samples.append({"image": f"im{number}.png", "gt": f"im{number}_gt.npy"})
    samples.append({"image": "im0.png", "gt": "lost.npy"})
    write_manifest(folder, {"samples": samples})
    return folder, scales


def test_cli_scores_a_known_dataset_and_reports_the_bad_sample(
    known_dataset: tuple[Path, list[float]],
    converted_onnx: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder, scales = known_dataset
    args = ["eval", str(folder), "--weights", str(converted_onnx), "--threads", "1"]
    code, out, err = run([*args, "--json"], capsys)
    assert code == 1, err  # the lost ground truth fails; the others are still scored
    assert f"depthlite: error: {folder / 'lost.npy'}: no such ground truth file" in err
    assert "2 image(s) evaluated, 1 failed" in err
    report = json.loads(out)
    assert [image["image"] for image in report["images"]] == ["im0.png", "im1.png"]
    for image, scale in zip(report["images"], scales, strict=True):
        assert image["scale"] == pytest.approx(scale, rel=1e-5)
        assert image["aligned"]["absrel"] < 1e-5
        assert image["aligned"]["delta1"] == 1.0
        assert image["valid_pixels"] == 48 * 64
        assert image["metric"] is None
    assert report["mean"]["images"] == 2
    assert report["mean"]["aligned"]["delta1"] == 1.0
    assert report["failures"] == [
        {"source": str(folder / "lost.npy"), "error": f"{folder / 'lost.npy'}: no such "
         "ground truth file"}
    ]  # fmt: skip
    assert report["kind"] == RELATIVE

    code, out, _ = run([*args, "--json", str(folder / "r.json"), "-q"], capsys)
    assert code == 1
    lines = out.splitlines()
    assert lines[0].split() == ["image", "pixels", "AbsRel", "delta<1.25", "RMSE", "[m]"]
    assert lines[2].split()[:4] == ["im0.png", "3,072", "0.0000", "1.0000"]
    assert lines[-1].split()[:6] == ["mean", "of", "2", "image(s)", "0.0000", "1.0000"]
    assert json.loads((folder / "r.json").read_text())["images"] == report["images"]


def test_cli_evaluates_the_motorcycle_example(
    tmp_path: Path, converted_onnx: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["eval", "--write-example", str(tmp_path / "moto")], capsys)
    assert code == 0, err
    assert f"depthlite eval --model NAME {tmp_path / 'moto'}" in out
    args = ["eval", str(tmp_path / "moto"), "--weights", str(converted_onnx), "--json"]
    code, out, err = run([*args, "--threads", "1"], capsys)
    assert code == 0, err
    (image,) = json.loads(out)["images"]
    assert image["valid_pixels"] == 343_274
    assert image["unit"] == "m"
    assert image["depth_cap"] == pytest.approx(192.0317 / (7.19136 + 31.086), rel=1e-4)
    assert 0 <= image["aligned"]["delta1"] <= 1  # synthetic weights: no meaningful score


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval"], "give a DATASET folder or manifest"),
        (["eval", "x", "--write-example", "y"], "--write-example takes no DATASET"),
    ],
)
def test_cli_usage_errors_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(args, capsys)
    assert code == 2
    assert message in err


@pytest.mark.parametrize("cap", ["0", "-1", "inf", "far"])
def test_cli_refuses_a_bad_depth_cap(cap: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["eval", "data", "--depth-cap", cap])
    assert info.value.code == 2
    assert "--depth-cap" in capsys.readouterr().err


def test_cli_a_broken_manifest_is_one_line_and_exit_1(
    tmp_path: Path, converted_onnx: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_manifest(tmp_path, "{oops")
    code, out, err = run(["eval", str(tmp_path), "--weights", str(converted_onnx)], capsys)
    assert code == 1
    assert out == ""
    assert err.strip().splitlines() == [
        f"depthlite: error: {tmp_path / MANIFEST_NAME}: not valid JSON (line 1, column 2: "
        "Expecting property name enclosed in double quotes)"
    ]


def test_cli_resizes_prediction_to_a_smaller_ground_truth_and_refuses_another_shape(
    tmp_path: Path, converted_onnx: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), test_image(3, 48, 64))
    np.save(tmp_path / "a_depth.npy", random_depth(6, (24, 32)))
    cv2.imwrite(str(tmp_path / "b.png"), test_image(4, 48, 64))
    np.save(tmp_path / "b_depth.npy", random_depth(7, (48, 48)))
    args = ["eval", str(tmp_path), "--weights", str(converted_onnx), "--json"]
    code, out, err = run(args, capsys)
    assert code == 1
    (image,) = json.loads(out)["images"]
    assert (image["image"], image["valid_pixels"]) == ("a.png", 24 * 32)
    assert "the image is 64x48 but its ground truth 48x48: another aspect ratio" in err


def test_the_library_gives_the_same_report(
    known_dataset: tuple[Path, list[float]], converted_onnx: Path
) -> None:
    folder, _ = known_dataset
    est = DepthEstimator(weights=converted_onnx, threads=1, progress=False)
    report = evaluate_dataset(est, load_dataset(folder))
    assert [r.sample.name for r in report.results] == ["im0.png", "im1.png"]
    assert [f.source for f in report.failures] == [str(folder / "lost.npy")]
    mean = report.mean()
    assert mean is not None and mean.absrel < 1e-5 and mean.delta1 == 1.0


def test_a_negative_scale_is_scored_with_a_warning(
    tmp_path: Path, converted_onnx: Path, caplog: pytest.LogCaptureFixture
) -> None:
    est = DepthEstimator(weights=converted_onnx, threads=1, progress=False)
    cv2.imwrite(str(tmp_path / "a.png"), test_image(5, 48, 64))
    prediction = est.predict(tmp_path / "a.png").depth.astype(np.float64)
    # Depth that grows with the prediction: the model's near is the ground truth's far.
    np.save(tmp_path / "a_depth.npy", 1.0 / (0.5 + prediction.max() - prediction))
    (item,) = load_dataset(tmp_path).samples
    result = evaluate_sample(est, item)
    assert result.scores.scale == pytest.approx(-1.0, rel=1e-5)
    assert result.scores.aligned.absrel < 1e-5
    assert "negative scale" in caplog.text
