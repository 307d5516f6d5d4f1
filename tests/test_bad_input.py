"""User mistakes the command line must answer in one line, with the fix, never a traceback.

Each case here was found by driving the CLI and the server with bad files, paths and options
(session 12): the exit code, and a message that names the file the user gave (not a cache or
temporary file) and what to do.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import onnx
import pytest

from depthlite import fsutil, pins
from depthlite.cli.main import main
from depthlite.errors import InvalidOptionError, OutputError
from depthlite.fsutil import atomic_path
from depthlite.jobs.store import JobStore
from depthlite.runtime.metadata import MODEL_KEY
from depthlite.server.runner import _check_address
from test_cli import run, write_image


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    return write_image(tmp_path / "photo.jpg")


@pytest.fixture
def blocker(tmp_path: Path) -> Path:
    """A plain file where a folder would have to be."""
    path = tmp_path / "blocker"
    path.write_text("not a folder")
    return path


def test_weights_that_cannot_be_a_model_are_named(
    photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    code, _, err = run(["predict", str(photo), "--weights", str(empty)], capsys)
    assert (code, err.strip()) == (
        1,
        f"depthlite: error: --weights {empty} is empty (0 bytes): pass a .pt/.pth checkpoint "
        "or an .onnx file",
    )
    code, _, err = run(["predict", str(photo), "--weights", str(tmp_path)], capsys)
    assert code == 1 and f"--weights {tmp_path} is a folder" in err


def test_an_onnx_made_for_another_model_is_refused_before_anything_is_derived(
    photo: Path, converted_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = onnx.load(str(converted_onnx))
    for prop in model.metadata_props:
        if prop.key == MODEL_KEY:
            prop.value = "midas_v21_384"
    other = tmp_path / "other.onnx"
    onnx.save(model, str(other))
    code, _, err = run(["predict", str(photo), "--weights", str(other)], capsys)
    assert code == 1
    assert f"--weights {other} was made for model 'midas_v21_384'" in err
    assert "pass --model midas_v21_384" in err
    home = Path(os.environ["DEPTHLITE_HOME"])
    assert not (home / "derived" / "optimize_ort").exists(), "nothing may be derived first"


def test_files_that_are_not_checkpoints_get_advice_not_torchs(
    photo: Path, converted_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes.pt"
    notes.write_text("hello")
    code, _, err = run(["predict", str(photo), "--weights", str(notes)], capsys)
    assert code == 1 and f"cannot read {notes} as a PyTorch checkpoint" in err
    assert "weights_only" not in err  # torch's advice would run the file's code
    code, _, err = run(
        ["predict", str(photo), "--backend", "torch", "--weights", str(converted_onnx)], capsys
    )
    assert code == 1 and "an .onnx file is run as it is, not converted" in err


def test_o_naming_a_file_is_refused_once(
    photo: Path, blocker: Path, converted_onnx: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = ["--weights", str(converted_onnx)]
    for command in (["predict", str(photo)], ["batch", str(photo), "--local"]):
        code, _, err = run([*command, "-o", str(blocker), *weights], capsys)
        assert code == 2, err
        assert err.count(f"-o {blocker} is a file; -o takes a folder") == 1


def test_outputs_that_cannot_be_written_name_the_file_and_the_way_out(
    photo: Path,
    video_clip: Path,
    blocker: Path,
    converted_onnx: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cases = [
        (["predict", str(photo), "-o", str(blocker / "sub")], blocker / "sub" / "photo_color.png"),
        (["video", str(video_clip), "-o", str(blocker / "depth.mp4")], blocker / "depth.mp4"),
    ]
    for command, target in cases:
        code, _, err = run([*command, "--weights", str(converted_onnx)], capsys)
        assert code == 1
        assert f"cannot write {target}: a file is in the way" in err
        assert ".part" not in err and "Traceback" not in err
    with (
        pytest.raises(OutputError, match=f"cannot write {blocker / 'x.bin'}"),
        atomic_path(blocker / "x.bin"),
    ):
        pass
    with pytest.raises(OutputError, match=r"cannot keep jobs in .*--jobs-dir"):
        JobStore(blocker / "jobs", ttl=60)


def test_contradictory_video_options_are_usage_errors(
    video_clip: Path, converted_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = ["--weights", str(converted_onnx)]
    code, _, err = run(
        ["video", str(video_clip), "-f", "npz", "-o", str(tmp_path / "a.mp4"), *weights], capsys
    )
    assert code == 2 and "--format npz, but 'a.mp4' is named for mp4" in err
    code, _, err = run(
        ["video", str(video_clip), "--side", "-o", str(tmp_path / "a.npz"), *weights], capsys
    )
    assert code == 2 and "(--side, side=true) puts the input beside the colour map" in err
    assert not list(tmp_path.glob("a.*")), "nothing may be written"
    code, _, err = run(["video", str(tmp_path), "-o", str(tmp_path / "b.mp4"), *weights], capsys)
    assert code == 1 and "is a folder, not a video file" in err


def test_queue_urls_are_checked_and_an_absent_redis_fails_fast(
    photo: Path, converted_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--weights", str(converted_onnx), "--store", str(tmp_path / "store")]
    code, _, err = run(
        ["batch", str(photo), "-o", str(tmp_path / "o"), "--queue", "notaurl", *common], capsys
    )
    assert code == 2 and "invalid setting: queue" in err and "redis://HOST:6379/0" in err
    code, _, err = run(["worker", "--queue", "notaurl", *common], capsys)
    assert code == 2 and "the queue is a Redis URL" in err
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.monotonic()
    code, _, err = run(
        [
            "batch",
            str(photo),
            "-o",
            str(tmp_path / "o"),
            "--queue",
            f"redis://127.0.0.1:{port}/0",
            *common,
        ],
        capsys,
    )
    assert code == 1 and "cannot reach the job queue" in err and "--local" in err
    assert time.monotonic() - start < 15, "Celery's own retries take about 20 s"


def test_batch_and_worker_take_max_pixels(
    photo: Path, converted_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        ["batch", str(photo), "-o", str(tmp_path / "o"), "--local", "--max-pixels", "100",
         "--weights", str(converted_onnx)],
        capsys,
    )  # fmt: skip
    assert code == 1 and "above the limit of 100 pixels" in err
    with pytest.raises(SystemExit):
        main(["worker", "--help"])
    assert "--max-pixels" in capsys.readouterr().out


def test_serve_refuses_an_address_it_cannot_listen_on() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(InvalidOptionError, match=f"port {port} is in use.*--port"):
            _check_address("127.0.0.1", port)
    with pytest.raises(InvalidOptionError, match=r"--host 999\.1\.1\.1: not an address"):
        _check_address("999.1.1.1", 8000)


def test_any_other_file_error_is_one_line(
    monkeypatch: pytest.MonkeyPatch, photo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from depthlite.cli import predict

    def denied(args: object) -> int:
        raise PermissionError(13, "Permission denied", "/srv/locked.jpg")

    monkeypatch.setattr(predict, "run", denied)
    code, _, err = run(["predict", str(photo)], capsys)
    assert (code, err.strip()) == (1, "depthlite: error: /srv/locked.jpg: Permission denied")


def test_a_read_only_cache_still_loads_and_says_which_setting_to_change(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def denied(*args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied")

    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"verified")
    monkeypatch.setattr(fsutil.tempfile, "mkstemp", denied)
    pins._pin_quietly(checkpoint, "0" * 64)  # a verified file must load without its pin
    assert "could not pin it" in caplog.text
    with (
        pytest.raises(OutputError, match=r"cache file .*permission denied; set DEPTHLITE_HOME"),
        atomic_path(tmp_path / "x.onnx", cache=True),
    ):
        pass
