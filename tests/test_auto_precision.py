"""precision="auto": the decision both ways, the measurement on real files, the cache.

The weights are synthetic, so the real INT8 model is far from FP32 (AbsRel >> 0.01) and auto
keeps FP32; the accepted path is exercised with a real file that agrees: the FP32 file itself
under another precision's label. Speeds are never asserted (no timed tests): where the
decision must not depend on them, ``min_speedup=0`` says "any speed will do".
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from conftest import MODEL
from depthlite.cli.main import main
from depthlite.errors import InvalidOptionError
from depthlite.models import quantize
from depthlite.options import (
    AUTO_PRECISION,
    BACKENDS,
    PRECISION_CHOICES,
    PRECISIONS,
    check_precision,
)
from depthlite.runtime.compare import Measurement, SessionFile, compare_sessions
from depthlite.zoo import get_card
from depthlite.zoo.autoprecision import (
    ABSREL_BOUND,
    AUTO_RECIPE,
    MIN_SPEEDUP,
    cached_choices,
    choose_precision,
    decide,
    native_bf16,
)
from depthlite.zoo.derive import derived_files
from depthlite.zoo.resolver import find_quantized

CARD = get_card(MODEL)


@pytest.fixture
def photos() -> list[np.ndarray]:
    return [p.rgb for p in quantize.sample_photos(quantize.EVALUATION_PHOTOS)]


@pytest.fixture
def quick_calibration(monkeypatch: pytest.MonkeyPatch) -> None:
    """One calibration photo: the INT8 file is real, only its calibration is short."""
    monkeypatch.setattr(quantize, "CALIBRATION_PHOTOS", ("chelsea",))


@pytest.fixture(scope="module")
def int8_file(converted_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real INT8 model of the synthetic weights (one calibration photo), made once."""
    out = tmp_path_factory.mktemp("int8") / f"{MODEL}-int8.onnx"
    return quantize.quantize_model(converted_onnx, out, CARD, quantize.sample_photos(("chelsea",)))


def _m(precision: str, absrel: float, ms: float, reference_ms: float = 100.0) -> Measurement:
    return Measurement(precision, absrel, 1.0 - absrel, ms, reference_ms)


# -- the decision (a pure function of measurements) -------------------------------------------


def test_decide_takes_the_fastest_candidate_within_the_bound() -> None:
    fp32 = _m("fp32", 0.0, 100.0)
    # bf16 is faster still, but beyond the bound: int8 wins.
    measured = [fp32, _m("int8", 0.004, 100 / 2.1), _m("bf16", 0.02, 20.0)]
    precision, reason = decide(measured)
    assert precision == "int8"
    assert reason == "AbsRel 0.0040 <= 0.01, 2.1x faster than fp32"
    both_good = [fp32, _m("int8", 0.004, 50.0), _m("bf16", 0.003, 40.0)]
    assert decide(both_good)[0] == "bf16"


def test_decide_keeps_fp32_and_says_why_each_candidate_lost() -> None:
    fp32 = _m("fp32", 0.0, 100.0)
    measured = [fp32, _m("int8", 0.3576, 50.0), _m("bf16", 0.002, 100 / 1.05)]
    precision, reason = decide(measured)
    assert precision == "fp32"
    assert reason == "int8 AbsRel 0.3576 > 0.01; bf16 only 1.05x faster than fp32 (< 1.1x)"
    assert decide([fp32, _m("int8", float("nan"), 10.0)])[0] == "fp32"  # NaN never agrees
    assert decide([fp32]) == ("fp32", "no other precision measured")


def test_decide_bound_and_margin_are_inclusive() -> None:
    fp32 = _m("fp32", 0.0, 110.0)
    at_limits = _m("int8", ABSREL_BOUND, 100.0, reference_ms=100.0 * MIN_SPEEDUP)
    assert decide([fp32, at_limits])[0] == "int8"
    beyond = dataclasses.replace(at_limits, absrel=np.nextafter(ABSREL_BOUND, 1.0))
    assert decide([fp32, beyond])[0] == "fp32"


# -- the measurement on real files ------------------------------------------------------------


def test_the_same_file_under_another_label_agrees_and_is_accepted(
    converted_onnx: Path, photos: list[np.ndarray]
) -> None:
    ref = SessionFile("fp32", converted_onnx)
    measured, failed = compare_sessions(
        CARD, "onnxruntime", ref, [SessionFile("int8", converted_onnx)], photos=photos, threads=1
    )
    assert failed == []
    assert [m.precision for m in measured] == ["fp32", "int8"]
    same = measured[1]
    assert same.absrel < 1e-6 and same.delta1 == 1.0  # one file, one session type: identical
    assert same.ms > 0 and same.reference_ms > 0 and np.isfinite(same.speedup)
    assert decide(measured, min_speedup=0.0) == (
        "int8",
        f"AbsRel {same.absrel:.4f} <= 0.01, {same.speedup:.1f}x faster than fp32",
    )


def test_the_real_int8_model_of_synthetic_weights_is_refused(
    converted_onnx: Path, photos: list[np.ndarray], int8_file: Path
) -> None:
    measured, _ = compare_sessions(
        CARD,
        "onnxruntime",
        SessionFile("fp32", converted_onnx),
        [SessionFile("int8", int8_file)],
        photos=photos,
        threads=1,
    )
    absrel = measured[1].absrel
    assert ABSREL_BOUND < absrel < 1.0  # a real error, not a broken session
    precision, reason = decide(measured, min_speedup=0.0)
    assert precision == "fp32" and reason == f"int8 AbsRel {absrel:.4f} > 0.01"
    # The same figures under a looser bound are accepted: the bound is what decides.
    assert decide(measured, bound=1.0, min_speedup=0.0)[0] == "int8"


def test_bf16_is_measured_only_where_the_cpu_has_it(
    converted_onnx: Path, photos: list[np.ndarray]
) -> None:
    pytest.importorskip("openvino")
    measured, failed = compare_sessions(
        CARD,
        "openvino",
        SessionFile("fp32", converted_onnx),
        [SessionFile("bf16", converted_onnx)],
        photos=photos[:1],
        threads=1,
    )
    if native_bf16():
        assert failed == [] and np.isfinite(measured[1].absrel)
    else:  # the backend refuses emulated BF16; the measurement goes on without it
        assert [m.precision for m in measured] == ["fp32"]
        assert failed[0][0] == "bf16" and "no native BF16" in failed[0][1]


# -- choose_precision: candidates, cache, CLI -------------------------------------------------


def _auto_records() -> list[Path]:
    return [m.path for m in derived_files(MODEL) if m.recipe == AUTO_RECIPE]


@pytest.mark.slow
def test_auto_measures_once_then_loads_the_cached_choice(
    converted_onnx: Path,
    quick_calibration: None,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO, logger="depthlite.zoo.autoprecision")
    first = choose_precision(CARD, "onnxruntime", weights=converted_onnx, threads=1)
    assert (first.precision, first.cached, first.threads) == ("fp32", False, 1)
    assert [m.precision for m in first.measurements] == ["fp32", "int8"]
    assert first.measurements[1].absrel > ABSREL_BOUND
    assert first.reason.startswith("int8 AbsRel ") and first.reason.endswith(" > 0.01")
    assert find_quantized(CARD, converted_onnx) is not None  # made to be measured, and kept
    records = _auto_records()
    assert len(records) == 1

    second = choose_precision(CARD, "onnxruntime", weights=converted_onnx, threads=1)
    assert second.cached and second == dataclasses.replace(first, cached=True)
    assert caplog.messages[-1] == f"{first.summary()[: -len('now)')]}cached)"
    assert caplog.messages[-1].startswith("precision auto -> fp32 (int8 AbsRel ")

    # A damaged record is measured again and replaced, not trusted or left behind.
    records[0].write_text("{not json", encoding="utf-8")
    third = choose_precision(CARD, "onnxruntime", weights=converted_onnx, threads=1)
    assert not third.cached and _auto_records() == records
    assert json.loads(records[0].read_text(encoding="utf-8"))["precision"] == "fp32"

    # Another bound is another key: measured again, both records kept.
    looser = choose_precision(CARD, "onnxruntime", weights=converted_onnx, threads=1, bound=1.0)
    assert not looser.cached and len(_auto_records()) == 2
    assert [source for source, _ in cached_choices(MODEL)] == [converted_onnx.name] * 2

    assert main(["models", MODEL]) == 0
    out = capsys.readouterr().out
    assert f"onnxruntime    {converted_onnx.name}: precision auto -> " in out
    assert "auto_precision" not in out  # the record shows as its choice, not as a file


def test_torch_is_fp32_without_measuring() -> None:
    choice = choose_precision(CARD, "torch")
    assert (choice.precision, choice.reason, choice.measured_at) == (
        "fp32",
        "torch runs fp32 only",
        None,
    )
    assert _auto_records() == []


def test_a_user_int8_file_is_int8_without_measuring(int8_file: Path) -> None:
    choice = choose_precision(CARD, "onnxruntime", weights=int8_file)
    assert (choice.precision, choice.reason, choice.measurements) == (
        "int8",
        "the model file is INT8 already",
        (),
    )
    # Telling needs the whole file read, so the answer is recorded too.
    assert len(_auto_records()) == 1
    again = choose_precision(CARD, "onnxruntime", weights=int8_file)
    assert again.cached and again.summary() == (
        "precision auto -> int8 (the model file is INT8 already; cached)"
    )


def test_a_large_model_is_not_quantized_behind_the_users_back(converted_onnx: Path) -> None:
    large = dataclasses.replace(CARD, params=344_000_000)
    choice = choose_precision(large, "onnxruntime", weights=converted_onnx)
    assert choice.precision == "fp32" and choice.measured_at is None
    assert choice.skipped[0][0] == "int8"
    assert f"run `depthlite quantize --model {MODEL}` once" in choice.reason
    assert find_quantized(CARD, converted_onnx) is None and _auto_records() == []


# -- the option itself ------------------------------------------------------------------------


def test_auto_is_a_choice_for_every_backend_but_not_a_precision() -> None:
    assert AUTO_PRECISION in PRECISION_CHOICES and AUTO_PRECISION not in PRECISIONS
    for backend in BACKENDS:
        assert check_precision(backend, AUTO_PRECISION) == AUTO_PRECISION
    with pytest.raises(InvalidOptionError, match=r"choose one of: fp32, int8, bf16, auto$"):
        check_precision("onnxruntime", "fp16")
    with pytest.raises(InvalidOptionError, match="does not run precision 'int8'"):
        check_precision("torch", "int8")
