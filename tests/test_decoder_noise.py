"""Native decoder output (libjpeg, libtiff, OpenCV) never reaches stderr raw.

The files below make the C libraries write straight to fd 2: a JPEG with junk before a marker
(libjpeg via OpenCV), 16-bit TIFFs with an unknown tag, whole or cut short (libtiff via
OpenCV, the cut one failing), and a cut deflate TIFF (libtiff via Pillow, failing).
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from servekit import serve

NOISY_OK = ("junk.jpg", "tagged16.tif")
NOISY_FAILING = ("cut16.tif", "cut_deflate.tif")
BAR = re.compile(r"^\s*\d+%\|")  # a tqdm redraw (the bar is drawn with \r, never \n)


def _noisy_files(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=90)
    jpeg = buf.getvalue()
    sos = jpeg.index(b"\xff\xda")
    (folder / "clean.jpg").write_bytes(jpeg)
    # "Corrupt JPEG data: 3 extraneous bytes before marker 0xda"
    (folder / "junk.jpg").write_bytes(jpeg[:sos] + b"abc" + jpeg[sos:])
    deep = rng.integers(0, 65535, (64, 80, 3)).astype(np.uint16)
    unknown_tag = [(65000, "s", 0, "hello", True)]
    tifffile.imwrite(folder / "tagged16.tif", deep, photometric="rgb", extratags=unknown_tag)
    whole = (folder / "tagged16.tif").read_bytes()
    (folder / "cut16.tif").write_bytes(whole[: len(whole) // 2])
    scratch = folder / "deflate.tmp"
    tifffile.imwrite(scratch, rgb, compression="zlib")
    whole = scratch.read_bytes()
    scratch.unlink()
    (folder / "cut_deflate.tif").write_bytes(whole[: len(whole) * 2 // 3])
    return sorted(folder.iterdir())


def _depthlite(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("depthlite")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEPTHLITE_")}
    env.update(DEPTHLITE_HOME=str(home), DEPTHLITE_OFFLINE="1")
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, check=False, env=env, timeout=300
    )


def _stderr_lines(stderr: str) -> list[str]:
    """What a terminal would keep: each line's last redraw, progress bars left out."""
    lines = []
    for line in stderr.split("\n"):
        for segment in line.split("\r"):
            if segment.strip() and not BAR.match(segment):
                lines.append(segment)
    return lines


def test_the_files_do_make_native_noise(tmp_path: Path) -> None:
    """Without capture (a plain load_image), each noisy file writes to fd 2: the fixtures
    are real, so the CLI and server tests below prove something."""
    files = _noisy_files(tmp_path / "in")
    script = (
        "import sys\nfrom depthlite.imageio import load_image\n"
        "try:\n    load_image(sys.argv[1])\nexcept Exception:\n    pass\n"
    )
    for path in files:
        raw = subprocess.run(
            [sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True
        )
        assert bool(raw.stderr.strip()) == (path.name != "clean.jpg"), (path.name, raw.stderr)


def test_predict_prints_one_line_per_noisy_file(tmp_path: Path, converted_onnx: Path) -> None:
    _noisy_files(tmp_path / "in")
    out = tmp_path / "out"
    run = _depthlite(
        "predict", str(tmp_path / "in"), "-o", str(out), "--weights", str(converted_onnx),
        home=tmp_path / "home",
    )  # fmt: skip
    assert run.returncode == 1
    lines = _stderr_lines(run.stderr)
    assert all(line.startswith("depthlite: ") for line in lines), run.stderr
    for name in (*NOISY_OK, *NOISY_FAILING):
        said = [line for line in lines if f"{name}: decoder said: " in line]
        assert len(said) == 1, (name, run.stderr)
        assert said[0].startswith("depthlite: warning: ")
    for name in NOISY_FAILING:
        assert sum(line.startswith(f"depthlite: error: {tmp_path}") and name in line
                   for line in lines) == 1, run.stderr  # fmt: skip
    junk = next(line for line in lines if "junk.jpg: decoder said" in line)
    assert "Corrupt JPEG data: 3 extraneous bytes before marker 0xda" in junk
    cut = next(line for line in lines if "cut16.tif: decoder said" in line)
    assert re.search(r"\(\+\d+ more lines; -v shows them\)$", cut), cut
    assert lines[-1] == "depthlite: 3 image(s) done, 3 file(s) written, 2 failed"
    assert not [line for line in lines if "clean.jpg" in line]


def test_predict_verbose_logs_every_captured_line(tmp_path: Path, converted_onnx: Path) -> None:
    (path,) = (p for p in _noisy_files(tmp_path / "in") if p.name == "cut16.tif")
    run = _depthlite(
        "predict", str(path), "-v", "-o", str(tmp_path / "out"), "--weights",
        str(converted_onnx), home=tmp_path / "home",
    )  # fmt: skip
    lines = _stderr_lines(run.stderr)
    assert all(line.startswith("depthlite: ") for line in lines), run.stderr
    details = [line for line in lines if line.startswith(f"depthlite: {path}: decoder: ")]
    assert len(details) >= 3, run.stderr
    assert any("Unknown field with tag 65000" in line for line in details)
    assert not any("-v shows them" in line for line in lines)


def test_local_batch_prints_one_line_per_noisy_file(tmp_path: Path, converted_onnx: Path) -> None:
    _noisy_files(tmp_path / "in")
    run = _depthlite(
        "batch", str(tmp_path / "in"), "--local", "-o", str(tmp_path / "out"), "--weights",
        str(converted_onnx), home=tmp_path / "home",
    )  # fmt: skip
    assert run.returncode == 1
    lines = _stderr_lines(run.stderr)
    assert all(line.startswith("depthlite: ") for line in lines), run.stderr
    for name in (*NOISY_OK, *NOISY_FAILING):
        assert sum(f"{name}: decoder said: " in line for line in lines) == 1, run.stderr
    assert sum(line.startswith("depthlite: error: ") for line in lines) == len(NOISY_FAILING)
    assert lines[-1] == "depthlite: 3 image(s) done locally, 0 already done, 2 failed"


def _post(base: str, data: bytes, filename: str | None) -> int:
    if filename is None:
        body, headers = data, {"Content-Type": "application/octet-stream"}
    else:
        boundary = "depthliteboundary"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    request = urllib.request.Request(f"{base}/v1/depth?format=json", body, headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=60) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_server_json_log_holds_decoder_output_in_fields(
    tmp_path: Path, converted_onnx: Path
) -> None:
    files = {p.name: p.read_bytes() for p in _noisy_files(tmp_path / "in")}
    with serve(converted_onnx, tmp_path, "--log-format", "json") as served:
        assert _post(served.base, files["junk.jpg"], "junk.jpg") == 200
        assert _post(served.base, files["tagged16.tif"], None) == 200
        assert _post(served.base, files["cut_deflate.tif"], "cut_deflate.tif") == 422
    log = served.log.read_text()
    records = []
    for line in log.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}\n{log}")
    decoder = {r["source"]: r for r in records if r["logger"] == "depthlite.decoder"}
    assert set(decoder) == {"junk.jpg", "<body>", "cut_deflate.tif"}, log
    junk = decoder["junk.jpg"]
    assert junk["level"] == "warning"
    assert junk["decoder_output"] == ["Corrupt JPEG data: 3 extraneous bytes before marker 0xda"]
    assert junk["decoder_lines"] == 1
    assert any(
        "Unknown field with tag 65000" in text for text in decoder["<body>"]["decoder_output"]
    )
    assert any("TIFFFillStrip" in text for text in decoder["cut_deflate.tif"]["decoder_output"])


def test_overlapping_captures_name_every_source(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """C output has no thread id: what is written while two decodes overlap names both;
    what is written while one runs alone is its own. fd 2 is restored afterwards."""
    from depthlite.imageio import quiet

    monkeypatch.setattr(quiet, "_state", quiet._Module())  # enabled for this test only
    quiet.enable()
    before = os.fstat(2)
    with caplog.at_level("DEBUG", logger=quiet.DECODER_LOGGER):
        with quiet.capture("a.jpg"):
            with quiet.capture("b.tif"):
                assert quiet.redirected()
                os.write(2, b"shared line \x1b[31m\n")
            os.write(2, b"first of a\nsecond of a")  # no final newline
        assert not quiet.redirected()
    after = os.fstat(2)
    assert (before.st_dev, before.st_ino) == (after.st_dev, after.st_ino)
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert [r.getMessage() for r in warnings] == [
        "one of a.jpg, b.tif: decoder said: shared line \\x1b[31m",
        "a.jpg: decoder said: first of a (+1 more line)",
    ]
    assert warnings[0].sources == ["a.jpg", "b.tif"] and warnings[0].source is None
    assert warnings[1].source == "a.jpg"
    assert warnings[1].decoder_output == ["first of a", "second of a"]
    details = [r.getMessage() for r in caplog.records if r.levelname == "DEBUG"]
    assert "a.jpg: decoder: second of a" in details
