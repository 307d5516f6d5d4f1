"""Option sets that the CLI, the server and the estimator all validate against.

Model facts live in the cards (:mod:`depthlite.zoo`); this module holds only what is true of
every model: the runtimes, their precisions and the user's resize choice.
"""

from __future__ import annotations

from depthlite.errors import InvalidOptionError

__all__ = [
    "AUTO_ABSREL_BOUND",
    "AUTO_PRECISION",
    "BACKENDS",
    "BACKEND_PRECISIONS",
    "DEFAULT_BACKEND",
    "DEFAULT_PRECISION",
    "DEFAULT_RESIZE",
    "PRECISIONS",
    "PRECISION_CHOICES",
    "RESIZE_MODES",
    "check_choice",
    "check_precision",
]

# keep_aspect: the card's own resize rule; square: the card's size on both sides.
RESIZE_MODES: tuple[str, ...] = ("keep_aspect", "square")
BACKENDS: tuple[str, ...] = ("onnxruntime", "torch", "openvino")
PRECISIONS: tuple[str, ...] = ("fp32", "int8", "bf16")
# "auto" is a request, not a precision a session runs: it resolves (depthlite.zoo.autoprecision)
# to one of PRECISIONS when the model loads. PRECISIONS stays the concrete set because bench
# sweeps, request parameters and BACKEND_PRECISIONS name what actually runs.
AUTO_PRECISION = "auto"
PRECISION_CHOICES: tuple[str, ...] = (*PRECISIONS, AUTO_PRECISION)
# "auto" takes a faster precision only if its AbsRel against FP32 (after scale and shift) is
# at most this (depthlite.zoo.autoprecision).
AUTO_ABSREL_BOUND = 0.01
# What each backend can run. fp32 is exact (conformance); int8 is the static QDQ model from
# `depthlite quantize`; bf16 needs a CPU with native BF16 (AVX512_BF16 or AMX).
BACKEND_PRECISIONS: dict[str, tuple[str, ...]] = {
    "onnxruntime": ("fp32", "int8"),
    "torch": ("fp32",),
    "openvino": ("fp32", "bf16", "int8"),
}
DEFAULT_RESIZE = "keep_aspect"
DEFAULT_BACKEND = "onnxruntime"
DEFAULT_PRECISION = "fp32"


def check_precision(backend: str, precision: str) -> str:
    """Validate a precision (or ``"auto"``) for a backend, naming what that backend offers."""
    check_choice("precision", precision, PRECISION_CHOICES)
    allowed = BACKEND_PRECISIONS[check_choice("backend", backend, BACKENDS)]
    if precision != AUTO_PRECISION and precision not in allowed:
        raise InvalidOptionError(
            f"backend {backend!r} does not run precision {precision!r}; "
            f"it offers: {', '.join(allowed)}"
        )
    return precision


def check_choice(option: str, value: str, choices: tuple[str, ...]) -> str:
    """Validate an option against its allowed set with a message that lists the set."""
    if value not in choices:
        raise InvalidOptionError(f"invalid {option} {value!r}; choose one of: {', '.join(choices)}")
    return value
