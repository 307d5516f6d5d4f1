"""``precision="auto"``: the fastest precision here whose agreement with FP32 is within a bound.

What is decided, and why:

- **Candidates** are the backend's precisions (:data:`depthlite.options.BACKEND_PRECISIONS`)
  that can run here without a surprise. BF16 only where the CPU has it natively (the
  ``avx512_bf16`` or ``amx_bf16`` flag, and OpenVINO's CPU plugin agrees): emulated BF16 is
  slower than FP32. INT8 when its file is cached (``depthlite quantize`` made it), or when it
  can be made now in seconds: the ``quantize`` extra is installed and the model has at most
  :data:`AUTO_QUANTIZE_MAX_PARAMS` parameters. A larger model's INT8 file takes minutes and
  GBs, so auto leaves that to ``depthlite quantize`` and says so.
- **Agreement** (:mod:`depthlite.runtime.compare`): AbsRel after least-squares scale and shift,
  as ``depthlite quantize`` prints it, on the two photos it reports on (scikit-image's rocket and
  Middlebury motorcycle, never used for calibration), in both resize modes at the card's input
  size; the worst must be at most :data:`ABSREL_BOUND`. Without scikit-image nothing can be
  measured, and auto stays FP32 (not cached: installing the extra changes the answer).
- **Speed**: medians of runs alternated with FP32 at the card's default input. A candidate
  replaces FP32 only when it is at least :data:`MIN_SPEEDUP` times faster: FP32 is exact, and a
  loss must buy a clear gain (not timer noise).
- **Cache**: a derivation (:mod:`depthlite.zoo.derive`, recipe ``auto_precision``) of the FP32
  ONNX file, whose key covers that file's SHA-256, the backend, the bound, the candidates, the
  CPU (model and flags) and the runtime versions; the record is a small ``choice.json``. The
  thread count is recorded, not keyed: it rarely changes which precision is fastest.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from depthlite.errors import BackendUnavailableError, ConversionError
from depthlite.options import (
    AUTO_ABSREL_BOUND,
    BACKEND_PRECISIONS,
    BACKENDS,
    DEFAULT_PRECISION,
    check_choice,
)
from depthlite.runtime.base import default_threads
from depthlite.runtime.compare import Measurement, SessionFile, compare_sessions
from depthlite.runtime.metadata import is_int8_file
from depthlite.zoo import derive
from depthlite.zoo.cards import ModelCard
from depthlite.zoo.resolver import ResolvedFile, find_quantized, resolve, tool_versions

__all__ = [
    "ABSREL_BOUND",
    "AUTO_QUANTIZE_MAX_PARAMS",
    "AUTO_RECIPE",
    "MIN_SPEEDUP",
    "AutoChoice",
    "cached_choices",
    "choose_precision",
    "decide",
    "native_bf16",
]

logger = logging.getLogger(__name__)

AUTO_RECIPE = "auto_precision"
# 1: worst AbsRel over rocket + motorcycle x both resize modes; alternated medians.
AUTO_VERSION = 1
ABSREL_BOUND = AUTO_ABSREL_BOUND
MIN_SPEEDUP = 1.1
# MiDaS small (21 M) and the Depth Anything V2 Small family (25 M) quantize in seconds to a
# minute; the next size up (MiDaS v2.1, 105 M) takes minutes.
AUTO_QUANTIZE_MAX_PARAMS = 30_000_000
_RECORD = "choice.json"
_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@dataclass(frozen=True)
class AutoChoice:
    """What auto chose for a model file and backend, and why."""

    precision: str
    backend: str
    reason: str
    measurements: tuple[Measurement, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()  # (precision, why it was not considered)
    measured_at: float | None = None  # epoch seconds; None: decided without measuring
    cached: bool = False
    threads: int | None = None

    def summary(self) -> str:
        """The one log line: what was chosen, why, and whether it was measured now."""
        when = "; cached" if self.cached else ""
        if self.measured_at is not None:
            date = time.strftime("%Y-%m-%d", time.localtime(self.measured_at))
            when = f"; measured {date}, {'cached' if self.cached else 'now'}"
        return f"precision auto -> {self.precision} ({self.reason}{when})"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("cached")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AutoChoice:
        return cls(
            precision=data["precision"],
            backend=data["backend"],
            reason=data["reason"],
            measurements=tuple(Measurement(**m) for m in data["measurements"]),
            skipped=tuple((p, why) for p, why in data["skipped"]),
            measured_at=data["measured_at"],
            cached=True,
            threads=data.get("threads"),
        )


def decide(
    measurements: Sequence[Measurement],
    bound: float = ABSREL_BOUND,
    min_speedup: float = MIN_SPEEDUP,
) -> tuple[str, str]:
    """(precision, reason) from measurements whose first entry is the FP32 reference.

    The fastest candidate within ``bound`` that is at least ``min_speedup`` times faster than
    FP32 wins; else FP32, with what kept each candidate out.
    """
    others = list(measurements[1:])
    eligible = [m for m in others if m.absrel <= bound and m.speedup >= min_speedup]
    if eligible:
        best = max(eligible, key=lambda m: m.speedup)
        return best.precision, (
            f"AbsRel {best.absrel:.4f} <= {bound:g}, {best.speedup:.1f}x faster than fp32"
        )
    reasons = [
        f"{m.precision} AbsRel {m.absrel:.4f} > {bound:g}"
        if not m.absrel <= bound  # NaN fails too
        else f"{m.precision} only {m.speedup:.2f}x faster than fp32 (< {min_speedup:g}x)"
        for m in others
    ]
    return DEFAULT_PRECISION, "; ".join(reasons) or "no other precision measured"


def _cpu_flags() -> frozenset[str] | None:
    """The CPU's instruction-set flags (Linux); None where /proc/cpuinfo cannot tell."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def native_bf16() -> bool:
    """Whether this CPU runs BF16 natively (AVX512_BF16 or AMX) and OpenVINO would use it."""
    flags = _cpu_flags()
    if flags is not None and not flags & _BF16_FLAGS:
        return False
    try:
        from depthlite.runtime.openvino import bf16_supported
    except ImportError:
        return False
    return bf16_supported()


def _int8_unavailable(card: ModelCard, fp32_onnx: Path) -> str | None:
    """Why INT8 is not a candidate here, or None when its file is cached or quick to make."""
    if find_quantized(card, fp32_onnx) is not None:
        return None
    missing = [m for m in ("onnx", "skimage") if importlib.util.find_spec(m) is None]
    if missing:
        return "no INT8 file yet, and making one needs pip install 'depthlite[quantize]'"
    if card.params > AUTO_QUANTIZE_MAX_PARAMS:
        return (
            f"no INT8 file yet ({card.params / 1e6:.0f} M parameters take minutes and GBs to "
            f"quantize): run `depthlite quantize --model {card.name}` once to consider it"
        )
    return None


def _candidates(
    card: ModelCard, backend: str, fp32_onnx: Path
) -> tuple[list[str], list[tuple[str, str]]]:
    """The precisions to measure (FP32 first) and those left out, with why."""
    chosen, skipped = [DEFAULT_PRECISION], []
    for precision in BACKEND_PRECISIONS[backend]:
        if precision == DEFAULT_PRECISION:
            continue
        why = None
        if precision == "int8":
            why = _int8_unavailable(card, fp32_onnx)
        elif precision == "bf16" and not native_bf16():
            why = "no native BF16 on this CPU (needs AVX512_BF16 or AMX)"
        if why is None:
            chosen.append(precision)
        else:
            skipped.append((precision, why))
    return chosen, skipped


def _key_parts(backend: str, candidates: list[str], bound: float) -> tuple[dict, dict]:
    from depthlite.models.quantize import EVALUATION_PHOTOS, RECIPE_VERSION
    from depthlite.runtime.onnx import cpu_signature

    params = {
        "backend": backend, "bound": bound, "min_speedup": MIN_SPEEDUP,
        "candidates": candidates, "photos": list(EVALUATION_PHOTOS),
        "quantize": RECIPE_VERSION if "int8" in candidates else None,
    }  # fmt: skip
    runtime = "openvino" if backend == "openvino" else "onnxruntime"
    return params, {"cpu": cpu_signature(), **tool_versions("onnxruntime", runtime)}


def _lookup(model: str, sha: str, params: dict, tools: dict) -> tuple[AutoChoice | None, bool]:
    """The cached choice for this key, and whether a record exists (maybe unreadable)."""
    for manifest in derive.derived_files(model):
        if (
            manifest.recipe == AUTO_RECIPE
            and manifest.version == AUTO_VERSION
            and manifest.input_sha256 == sha
            and manifest.params == params
            and manifest.tools == tools
        ):
            return _read_record(manifest.path), True
    return None, False


def _read_record(path: Path) -> AutoChoice | None:
    try:
        return AutoChoice.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def cached_choices(model: str) -> list[tuple[str, AutoChoice]]:
    """(model file name, choice) of every recorded auto choice of a model (any backend, CPU
    or runtime), oldest first."""
    found = []
    for manifest in derive.derived_files(model):
        choice = _read_record(manifest.path) if manifest.recipe == AUTO_RECIPE else None
        if choice is not None:
            found.append((manifest.input_name, choice))
    return sorted(found, key=lambda item: item[1].measured_at or 0.0)


def _evaluation_photos() -> list[np.ndarray] | None:
    from depthlite.models.quantize import EVALUATION_PHOTOS, sample_photos

    try:
        return [photo.rgb for photo in sample_photos(EVALUATION_PHOTOS)]
    except BackendUnavailableError:
        return None


def _announce(choice: AutoChoice, *, loud: bool = False) -> AutoChoice:
    # Loud when it cost the user a pause (measured now) or when auto could not do its job.
    logger.log(logging.WARNING if loud else logging.INFO, "%s", choice.summary())
    return choice


def choose_precision(
    card: ModelCard,
    backend: str,
    *,
    weights: str | Path | None = None,
    offline: bool | None = None,
    progress: bool = True,
    threads: int | None = None,
    bound: float = ABSREL_BOUND,
) -> AutoChoice:
    """The precision ``precision="auto"`` means for this model file and backend, here.

    Cached after the first measurement; see the module's docstring for every rule.
    """
    check_choice("backend", backend, BACKENDS)
    if BACKEND_PRECISIONS[backend] == (DEFAULT_PRECISION,):
        return _announce(AutoChoice(DEFAULT_PRECISION, backend, f"{backend} runs fp32 only"))
    # The FP32 ONNX file as OpenVINO loads it: the export, not ONNX Runtime's CPU-specific
    # graph (that is keyed by the CPU and runtime already, which the record's key covers).
    fp32 = resolve(card, "openvino", weights=weights, offline=offline, progress=progress)
    candidates, skipped = _candidates(card, backend, fp32.path)
    sha = derive.digest_of(fp32.path)
    params, tools = _key_parts(backend, candidates, bound)
    found, exists = _lookup(card.name, sha, params, tools)
    if found is not None:
        return _announce(found)
    store = functools.partial(_store, card, fp32.path, params, tools, force=exists)
    # Files we made are FP32 by recipe; a user's file may be INT8 already (reading that loads
    # the whole file, so the answer is recorded like a measurement).
    if fp32.origin == "user" and is_int8_file(fp32.path):
        return _announce(store(AutoChoice("int8", backend, "the model file is INT8 already")))
    if len(candidates) == 1:
        why = "; ".join(f"{p}: {reason}" for p, reason in skipped)
        return _announce(AutoChoice(DEFAULT_PRECISION, backend, why, skipped=tuple(skipped)))
    photos = _evaluation_photos()
    if photos is None:
        why = "agreement cannot be measured without scikit-image's photos: pip install " \
            "'depthlite[quantize]'"  # fmt: skip
        return _announce(AutoChoice(DEFAULT_PRECISION, backend, why), loud=True)
    logger.warning(
        "precision auto: measuring %s of %s on %s against fp32 (once per model file and CPU)",
        ", ".join(candidates[1:]), card.name, backend,
    )  # fmt: skip
    files = {"weights": weights, "offline": offline, "progress": progress}
    choice = _measure(
        card, backend, candidates, skipped, photos=photos, threads=threads, bound=bound, files=files
    )
    return _announce(store(choice), loud=True)


def _store(
    card: ModelCard,
    fp32_onnx: Path,
    params: dict,
    tools: dict,
    choice: AutoChoice,
    *,
    force: bool,
) -> AutoChoice:
    """Record ``choice`` as the derivation of ``fp32_onnx`` under this key."""
    record = json.dumps(choice.to_json(), indent=2)
    derive.derive(
        AUTO_RECIPE, AUTO_VERSION, fp32_onnx, model=card.name, output=_RECORD, params=params,
        tools=tools, make=lambda _src, target: target.write_text(record, encoding="utf-8"),
        force=force,  # a record that exists but cannot be read is replaced
    )  # fmt: skip
    return choice


def _measure(
    card: ModelCard,
    backend: str,
    candidates: list[str],
    skipped: list[tuple[str, str]],
    *,
    photos: list[np.ndarray],
    threads: int | None,
    bound: float,
    files: dict[str, Any],
) -> AutoChoice:
    """Resolve each candidate's file (INT8 may be quantized now), measure, decide."""
    sessions: list[SessionFile] = []
    for precision in candidates:
        try:
            sessions.append(_session_file(precision, resolve(card, backend, precision, **files)))
        except (BackendUnavailableError, ConversionError) as exc:
            if precision == DEFAULT_PRECISION:
                raise
            logger.warning("precision auto: no %s for %s: %s", precision, card.name, exc)
            skipped.append((precision, str(exc)))
    measured, failed = compare_sessions(
        card, backend, sessions[0], sessions[1:], photos=photos, threads=threads
    )
    precision, reason = decide(measured, bound)
    return AutoChoice(
        precision, backend, reason, tuple(measured), (*skipped, *failed), time.time(),
        threads=threads or default_threads(),
    )  # fmt: skip


def _session_file(precision: str, resolved: ResolvedFile) -> SessionFile:
    return SessionFile(precision, resolved.path, resolved.official, resolved.preoptimized)
