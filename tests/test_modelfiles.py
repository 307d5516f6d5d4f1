"""The default model path end to end: download -> verify -> convert -> cache, and the fallback."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest

from conftest import MODEL, test_image
from depthlite import DepthEstimator, hub, modelfiles, specs
from depthlite.specs import Artifact
from httpserver import Route, Server


def serve_model(
    server: Server, monkeypatch: pytest.MonkeyPatch, checkpoint: Path, onnx: Path
) -> None:
    """Point the model table at the local server, with hashes of the files it serves."""
    ckpt_bytes, onnx_bytes = checkpoint.read_bytes(), onnx.read_bytes()
    server.routes["/v2_1/midas_v21_small_256.pt"] = Route(body=ckpt_bytes)
    server.routes["/v2_1/model-small.onnx"] = Route(body=onnx_bytes)
    spec = specs.get_spec(MODEL)
    test_spec = dataclasses.replace(
        spec,
        checkpoints=(
            Artifact(
                filename="midas_v21_small_256.pt",
                url=f"{server.url}/v2_1/midas_v21_small_256.pt",
                kind="checkpoint",
                sha256_prefix=hashlib.sha256(ckpt_bytes).hexdigest()[:8],
            ),
        ),
        official_onnx=Artifact(
            filename="model-small.onnx", url=f"{server.url}/v2_1/model-small.onnx", kind="onnx"
        ),
    )
    monkeypatch.setitem(specs.MODELS, MODEL, test_spec)
    monkeypatch.delenv("DEPTHLITE_OFFLINE")
    monkeypatch.setenv("no_proxy", "*")


def test_first_use_downloads_converts_and_caches(
    server: Server, monkeypatch: pytest.MonkeyPatch, checkpoint: Path, official_style_onnx: Path
) -> None:
    serve_model(server, monkeypatch, checkpoint, official_style_onnx)
    first = DepthEstimator(progress=False)
    depth = first.predict(test_image(1, 90, 160)).depth
    assert first.model_file.origin == "converted"
    assert server.hits == ["/v2_1/midas_v21_small_256.pt"]
    sha = hub.file_sha256(checkpoint)
    assert first.model_file.path == modelfiles.converted_path(specs.get_spec(MODEL), sha)

    # Second use: offline, from the cache, and without converting again (even without torch).
    monkeypatch.setenv("DEPTHLITE_OFFLINE", "1")
    monkeypatch.setattr(modelfiles, "torch_available", lambda: False)
    second = DepthEstimator()
    assert second.model_file.path == first.model_file.path
    assert np.array_equal(second.predict(test_image(1, 90, 160)).depth, depth)
    assert len(server.hits) == 1


def test_without_torch_falls_back_to_the_official_onnx_and_says_so_once(
    server: Server,
    monkeypatch: pytest.MonkeyPatch,
    checkpoint: Path,
    official_style_onnx: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    serve_model(server, monkeypatch, checkpoint, official_style_onnx)
    monkeypatch.setattr(modelfiles, "torch_available", lambda: False)
    modelfiles._warn_official_onnx.cache_clear()
    with caplog.at_level(logging.WARNING, logger="depthlite"):
        estimators = [DepthEstimator(progress=False) for _ in range(2)]
        results = [est.predict(test_image(2, 100, 150)) for est in estimators]
    assert [est.model_file.origin for est in estimators] == ["official-onnx"] * 2
    assert server.hits == ["/v2_1/model-small.onnx"]
    assert all(r.resize == "square" and r.network_output.shape == (256, 256) for r in results)
    warnings = [r for r in caplog.records if "official ONNX export" in r.getMessage()]
    assert len(warnings) == 1
    assert "depthlite[torch]" in warnings[0].getMessage()


def test_torch_backend_uses_the_checkpoint(
    server: Server, monkeypatch: pytest.MonkeyPatch, checkpoint: Path, official_style_onnx: Path
) -> None:
    serve_model(server, monkeypatch, checkpoint, official_style_onnx)
    est = DepthEstimator(backend="torch", progress=False)
    assert est.model_file.origin == "checkpoint"
    assert est.model_file.path.read_bytes() == checkpoint.read_bytes()


def test_offline_with_only_the_official_onnx_cached_uses_it(
    official_style_onnx: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Exactly what the offline error tells users to do: place model-small.onnx by hand.
    spec = specs.get_spec(MODEL)
    target = hub.model_dir(spec) / "model-small.onnx"
    target.parent.mkdir(parents=True)
    target.write_bytes(official_style_onnx.read_bytes())
    with caplog.at_level(logging.WARNING, logger="depthlite"):
        est = DepthEstimator(progress=False)
        result = est.predict(test_image(6, 80, 120))
    assert est.model_file.origin == "official-onnx"
    assert result.resize == "square" and result.depth.shape == (80, 120)
    assert any("checkpoint is not available" in r.getMessage() for r in caplog.records)


def test_derived_files_are_readable_by_other_users(checkpoint: Path, converted_onnx: Path) -> None:
    from depthlite.runtime.onnx import optimized_model_path

    spec = specs.get_spec(MODEL)
    converted = modelfiles.ensure_converted(spec, checkpoint)
    DepthEstimator(weights=converted_onnx).load()
    for path in (converted, optimized_model_path(converted_onnx)):
        assert path.stat().st_mode & 0o777 == 0o644, path


def test_dynamic_onnx_without_metadata_is_assumed_plain_and_warned(
    converted_onnx: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import onnx

    model = onnx.load(str(converted_onnx))
    del model.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(model, str(bare))
    img = test_image(9, 70, 100)
    with caplog.at_level(logging.WARNING, logger="depthlite"):
        got = DepthEstimator(weights=bare).predict(img).depth
    np.testing.assert_allclose(
        got, DepthEstimator(weights=converted_onnx).predict(img).depth, atol=1e-5
    )
    assert any("no depthlite metadata" in r.getMessage() for r in caplog.records)
