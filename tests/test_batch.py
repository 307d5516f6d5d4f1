"""``depthlite batch`` in local mode: mirrored outputs, per-file errors, resuming."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from conftest import test_image
from depthlite.cli.main import main


def test_local_batch_mirrors_folders_reports_bad_files_and_resumes(
    converted_onnx: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DEPTHLITE_QUEUE", raising=False)
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for index, name in enumerate(["a.png", "b.jpg", "sub/c.png"]):
        cv2.imwrite(str(src / name), test_image(index, 40, 48))
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    args = [
        "batch",
        str(src),
        "-r",
        "-o",
        str(out),
        "-f",
        "color,png16",
        "--weights",
        str(converted_onnx),
    ]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "broken.png" in err
    assert "3 image(s) done locally, 0 already done, 1 failed" in err
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == [
        "a_color.png",
        "a_depth16.png",
        "b_color.png",
        "b_depth16.png",
        "sub/c_color.png",
        "sub/c_depth16.png",
    ]
    stamp = (out / "a_color.png").stat().st_mtime_ns
    (out / "b_depth16.png").unlink()  # as if interrupted before this one was written
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "1 image(s) done locally, 2 already done, 1 failed" in err
    assert (out / "b_depth16.png").is_file()
    assert (out / "a_color.png").stat().st_mtime_ns == stamp  # not redone


def test_queued_results_land_at_their_own_paths(tmp_path: Path) -> None:
    import zipfile

    from depthlite.jobs.batch import _Chunk, _unpack

    # "a" is a prefix of "a__b" (a/b.jpg): each output must still find its own image.
    result = tmp_path / "result.zip"
    with zipfile.ZipFile(result, "w") as archive:
        for name in ("a_color.png", "a__b_color.png", "a__b_depth16.png"):
            archive.writestr(name, name.encode())
    chunk = _Chunk("job", [], {"a": Path("a"), "a__b": Path("a/b")}, ("color", "png16"))
    _unpack(result, chunk, tmp_path / "out", chunk.formats)
    written = sorted(
        p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png")
    )
    assert written == ["a/b_color.png", "a/b_depth16.png", "a_color.png"]
    assert (tmp_path / "out" / "a" / "b_color.png").read_bytes() == b"a__b_color.png"
