"""DepthEstimator end to end: conformance on every path, threads, torch-free runtime."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import MODEL, TOLERANCE, rel_error, test_image
from depthlite import DepthEstimator, DepthResult
from depthlite.errors import (
    BackendUnavailableError,
    InputNotFoundError,
    InvalidOptionError,
    OfflineError,
    UnknownModelError,
)


@pytest.fixture(scope="module")
def onnx_estimator(converted_onnx: Path) -> DepthEstimator:
    return DepthEstimator(weights=converted_onnx, threads=2)


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_pipeline_matches_the_original(
    backend: str, checkpoint: Path, converted_onnx: Path, pipeline_reference: dict[str, np.ndarray]
) -> None:
    weights = converted_onnx if backend == "onnxruntime" else checkpoint
    result = DepthEstimator(backend=backend, weights=weights).predict(test_image(10, 480, 640))
    assert isinstance(result, DepthResult)
    assert result.depth.shape == (480, 640) and result.depth.dtype == np.float32
    assert result.network_output.shape == (192, 256)
    assert rel_error(result.network_output, pipeline_reference["network_output"][0]) <= TOLERANCE
    assert rel_error(result.depth, pipeline_reference["depth"]) <= TOLERANCE
    assert set(result.timings) == {"decode", "preprocess", "inference", "postprocess"}
    assert all(v >= 0 for v in result.timings.values())


def test_colour_output_agrees_with_the_official_write_depth(
    onnx_estimator: DepthEstimator, pipeline_reference: dict[str, np.ndarray]
) -> None:
    from depthlite.imageio import to_png16

    result = onnx_estimator.predict(test_image(10, 480, 640))
    # 1e-4 of the range is 6.5 steps of 65535.
    diff = np.abs(to_png16(result.depth).astype(np.int64) - pipeline_reference["png16"])
    assert diff.max() <= 7
    assert result.colorize().shape == (480, 640, 3)


def test_inputs_of_every_kind_give_the_same_depth(
    onnx_estimator: DepthEstimator, tmp_path: Path
) -> None:
    import cv2
    from PIL import Image

    img = test_image(5, 120, 200)
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), img[..., ::-1])
    expected = onnx_estimator.predict(img).depth
    for source in (path, str(path), path.read_bytes(), Image.fromarray(img)):
        assert np.array_equal(onnx_estimator.predict(source).depth, expected)


def test_official_onnx_layout_uses_square_input_without_normalising(
    official_style_onnx: Path, checkpoint: Path
) -> None:
    img = test_image(11, 300, 500)
    official = DepthEstimator(weights=official_style_onnx, resize="keep_aspect")
    reference = DepthEstimator(backend="torch", weights=checkpoint, resize="square")
    got, expected = official.predict(img), reference.predict(img)
    assert official.input_policy().resize == "square"
    assert got.network_output.shape == (256, 256)
    assert got.resize == "square"
    assert rel_error(got.depth, expected.depth) <= TOLERANCE


def test_many_threads_share_one_estimator(converted_onnx: Path) -> None:
    est = DepthEstimator(weights=converted_onnx)
    images = [test_image(seed, 96 + 32 * (seed % 3), 128) for seed in range(6)]
    expected = [DepthEstimator(weights=converted_onnx).predict(img).depth for img in images]
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(12)

    def work(i: int) -> None:
        try:
            start.wait()
            results[i] = est.predict(images[i % 6]).depth
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(12):
        np.testing.assert_allclose(results[i], expected[i % 6], rtol=0, atol=1e-5)


def test_session_is_created_once_under_concurrency(
    converted_onnx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from depthlite.runtime import onnx as onnx_backend

    created: list[int] = []
    real_init = onnx_backend.OnnxRuntimeBackend.__init__

    def counting_init(self: object, *args: object, **kwargs: object) -> None:
        created.append(1)
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(onnx_backend.OnnxRuntimeBackend, "__init__", counting_init)
    est = DepthEstimator(weights=converted_onnx)
    threads = [threading.Thread(target=est.load) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(created) == 1


def test_predicting_with_onnx_never_imports_torch(converted_onnx: Path) -> None:
    code = (
        "import sys, numpy as np\n"
        "from depthlite import DepthEstimator\n"
        f"est = DepthEstimator(weights={str(converted_onnx)!r})\n"
        "res = est.predict(np.zeros((64, 64, 3), np.uint8))\n"
        "assert res.depth.shape == (64, 64)\n"
        "bad = [m for m in ('torch', 'onnx', 'openvino') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bad_options_are_typed_errors() -> None:
    with pytest.raises(UnknownModelError, match=MODEL):
        DepthEstimator("midas_huge")
    with pytest.raises(InvalidOptionError, match="onnxruntime"):
        DepthEstimator(backend="tensorrt")
    with pytest.raises(InvalidOptionError, match="fp32"):
        DepthEstimator(precision="fp8")
    with pytest.raises(InvalidOptionError, match="keep_aspect"):
        DepthEstimator(resize="stretch")


def test_alias_names_resolve() -> None:
    assert DepthEstimator("MiDaS_small").card.name == MODEL


def test_missing_weights_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match=r"nope\.onnx"):
        DepthEstimator(weights=tmp_path / "nope.onnx").load()


def test_offline_without_cache_explains_what_to_do() -> None:
    with pytest.raises(OfflineError) as info:
        DepthEstimator().load()
    message = str(info.value)
    assert (
        "--weights" in message and "https://github.com/isl-org/MiDaS/releases/download" in message
    )


def test_checkpoint_without_torch_is_a_clear_error(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from depthlite.zoo import resolver

    monkeypatch.setattr(resolver, "torch_available", lambda: False)
    with pytest.raises(BackendUnavailableError, match=r"depthlite\[torch\]"):
        DepthEstimator(weights=checkpoint).load()


def test_optimised_model_is_cached_per_machine_and_changes_nothing(
    converted_onnx: Path, official_style_onnx: Path
) -> None:
    for weights in (converted_onnx, official_style_onnx):
        first = DepthEstimator(weights=weights)
        img = test_image(7, 100, 180)
        expected = first.predict(img)
        cached = first.model_file.path
        assert first.model_file.preoptimized and cached != weights and cached.is_file()
        assert first.model_file.steps[-1].endswith("(made now)")
        again = DepthEstimator(weights=weights)  # loads the optimised file, no re-optimising
        got = again.predict(img)
        assert again.model_file.path == cached
        assert again.model_file.steps[-1].endswith("(cached)")
        np.testing.assert_array_equal(got.depth, expected.depth)
        assert again.load().model_format == first.load().model_format
        assert list(cached.parent.parent.glob("*.part")) == []


def test_damaged_optimised_model_is_rebuilt(converted_onnx: Path) -> None:
    cached = DepthEstimator(weights=converted_onnx).model_file.path
    size = cached.stat().st_size
    cached.write_bytes(b"garbage")
    est = DepthEstimator(weights=converted_onnx)
    result = est.predict(test_image(8, 64, 64))
    assert result.depth.shape == (64, 64)
    assert est.model_file.path == cached and cached.stat().st_size == size


def test_the_int8_arena_starts_with_one_region_for_a_whole_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """1.75x the first INT8 file, then powers of two (runtime/onnx.py: the fragmentation of
    region-by-region growth cost Depth Anything V2 Small 125 MiB of peak)."""
    import onnxruntime as ort

    from depthlite.runtime import onnx as backend

    configs: list[dict[str, int]] = []
    monkeypatch.setattr(backend, "_env_arena_state", {})
    monkeypatch.setattr(ort, "OrtArenaCfg", lambda cfg: configs.append(cfg) or cfg)
    monkeypatch.setattr(ort, "create_and_register_allocator", lambda info, cfg: None)
    assert backend._shared_int8_arena(124 << 20) and backend._shared_int8_arena(1 << 30)
    assert configs == [{"arena_extend_strategy": 0, "initial_chunk_size_bytes": 217 << 20}]
    monkeypatch.setattr(backend, "_env_arena_state", {})
    assert backend._shared_int8_arena(1 << 20)
    assert configs[-1]["initial_chunk_size_bytes"] == 16 << 20  # never below 16 MiB
    monkeypatch.setattr(backend, "_env_arena_state", {})
    assert backend._shared_int8_arena(3 << 30)
    assert configs[-1]["initial_chunk_size_bytes"] == 1 << 30  # nor above what an int holds


def test_int8_sessions_use_the_shared_arena_and_compute_the_same(
    converted_onnx: Path,
) -> None:
    from depthlite.runtime.onnx import OnnxRuntimeBackend, _session_options
    from depthlite.zoo import get_card as get_spec

    opts = _session_options(1, preoptimized=True, int8_arena_for=20 << 20)
    assert opts.get_session_config_entry("session.use_env_allocators") == "1"
    with pytest.raises(RuntimeError):  # not set at all for FP32 sessions
        _session_options(1, preoptimized=True).get_session_config_entry(
            "session.use_env_allocators"
        )
    # The allocator only decides where tensors live: the same file gives the same bits.
    spec = get_spec(MODEL)
    x = np.random.default_rng(0).uniform(-2, 2, (1, 3, 64, 96)).astype(np.float32)
    shared = OnnxRuntimeBackend(converted_onnx, spec, threads=1, precision="int8")
    own = OnnxRuntimeBackend(converted_onnx, spec, threads=1, precision="fp32")
    np.testing.assert_array_equal(shared.run(x), own.run(x))


def test_releasing_the_freed_heap_is_harmless() -> None:
    from depthlite.memory import trim_heap

    kept = np.arange(1_000_000)
    trim_heap()  # glibc: malloc_trim; elsewhere a no-op
    assert int(kept.sum()) == 499_999_500_000


def test_onnx_runtime_threads_stop_spinning_after_each_run() -> None:
    """Spinning intra-op threads after a run took a core from the stages around the network
    (docs/benchmarks.md, session 6); both session kinds set it."""
    from depthlite.runtime.onnx import _session_options

    for preoptimized in (True, False):
        opts = _session_options(2, preoptimized=preoptimized)
        assert opts.get_session_config_entry("session.force_spinning_stop") == "1"
