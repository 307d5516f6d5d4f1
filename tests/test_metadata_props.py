"""Reading an ONNX file's metadata without a session (runtime.metadata.read_metadata_props)."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import pytest

from depthlite.runtime.metadata import PRECISION_KEY, read_metadata_props


def _session_metadata(path: Path) -> dict[str, str]:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)


def test_the_same_entries_as_onnx_runtime_reads(converted_onnx: Path, int8_onnx: Path) -> None:
    for path in (converted_onnx, int8_onnx):
        props = read_metadata_props(path)
        assert props == _session_metadata(path)
        assert props["depthlite.model"] == "midas_v21_small_256"
    assert read_metadata_props(int8_onnx)[PRECISION_KEY] == "int8"
    assert read_metadata_props(converted_onnx)[PRECISION_KEY] == "fp32"


def test_files_that_are_not_onnx_raise_value_error(converted_onnx: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(converted_onnx.read_bytes()[:100_000])
    garbage = tmp_path / "photo.onnx"
    garbage.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8)  # a JPEG's start
    for path in (truncated, garbage):
        with pytest.raises(ValueError, match=r"protobuf|truncated"):
            read_metadata_props(path)


def test_an_int8_weights_file_is_recognised_without_a_session(
    int8_onnx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from depthlite import DepthEstimator
    from depthlite.runtime import onnx as onnx_backend

    def no_inspection(path: Path) -> object:
        raise AssertionError("a session was created only to read the metadata")

    monkeypatch.setattr(onnx_backend, "inspect_model", no_inspection)
    est = DepthEstimator(weights=int8_onnx, precision="int8", progress=False)
    assert est.model_file.origin == "user"  # used as it is, not quantized again


def test_a_broken_weights_file_for_int8_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import cv2

    from conftest import test_image
    from depthlite.cli.main import main
    from depthlite.errors import BackendUnavailableError

    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file at all")
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), test_image(0, 48, 64))
    code = main(["predict", str(photo), "-o", str(tmp_path / "out"), "--weights", str(broken),
                 "--precision", "int8", "-q"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == BackendUnavailableError.exit_code
    assert f"ONNX Runtime cannot load {broken}" in err and "--weights" in err
    assert "Traceback" not in err
