"""The resolver end to end: download -> verify -> convert -> cache, its steps, the fallbacks."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest

from conftest import MODEL, test_image
from depthlite import DepthEstimator, hub, zoo
from depthlite.errors import BackendUnavailableError
from depthlite.zoo import Artifact, Source, derive, resolver
from httpserver import Route, Server


def serve_model(
    server: Server, monkeypatch: pytest.MonkeyPatch, checkpoint: Path, onnx: Path
) -> None:
    """Point the model table at the local server, with hashes of the files it serves."""
    ckpt_bytes, onnx_bytes = checkpoint.read_bytes(), onnx.read_bytes()
    server.routes["/v2_1/midas_v21_small_256.pt"] = Route(body=ckpt_bytes)
    server.routes["/v2_1/model-small.onnx"] = Route(body=onnx_bytes)
    card = zoo.get_card(MODEL)
    official = card.official_onnx
    assert official is not None
    test_card = dataclasses.replace(
        card,
        checkpoints=(
            Artifact(
                "midas_v21_small_256.pt",
                ".pt",
                (Source(url=f"{server.url}/v2_1/midas_v21_small_256.pt"),),
                sha256_prefix=hashlib.sha256(ckpt_bytes).hexdigest()[:8],
            ),
        ),
        official_onnx=dataclasses.replace(
            official, sources=(Source(url=f"{server.url}/v2_1/model-small.onnx"),)
        ),
    )
    monkeypatch.setitem(zoo.CARDS, MODEL, test_card)
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
    assert first.model_file.steps == (
        "checkpoint midas_v21_small_256.pt (downloaded)",
        f"export_onnx {MODEL}.onnx (made now)",
        f"optimize_ort {MODEL}-optimized.onnx (made now)",
    )
    # Every derived file is described by its manifest: recipe, input digest, tools.
    made = {m.recipe: m for m in derive.derived_files(MODEL)}
    assert set(made) == {"export_onnx", "optimize_ort"}
    assert made["export_onnx"].input_sha256 == hub.file_sha256(checkpoint)
    assert made["optimize_ort"].input_sha256 == made["export_onnx"].output_sha256
    assert made["export_onnx"].tools["torch"] == "2.13.0+cpu"
    assert made["optimize_ort"].path == first.model_file.path

    # Second use: offline, from the cache, and without converting again (even without torch).
    monkeypatch.setenv("DEPTHLITE_OFFLINE", "1")
    monkeypatch.setattr(resolver, "torch_available", lambda: False)
    second = DepthEstimator()
    assert second.model_file.path == first.model_file.path
    assert all(step.endswith("(cached)") for step in second.model_file.steps)
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
    monkeypatch.setattr(resolver, "torch_available", lambda: False)
    resolver._warn_official_onnx.cache_clear()
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
    target = hub.model_dir(zoo.get_card(MODEL)) / "model-small.onnx"
    target.parent.mkdir(parents=True)
    target.write_bytes(official_style_onnx.read_bytes())
    with caplog.at_level(logging.WARNING, logger="depthlite"):
        est = DepthEstimator(progress=False)
        result = est.predict(test_image(6, 80, 120))
    assert est.model_file.origin == "official-onnx"
    assert result.resize == "square" and result.depth.shape == (80, 120)
    assert any("checkpoint is not available" in r.getMessage() for r in caplog.records)


def test_derived_files_are_readable_by_other_users(checkpoint: Path, converted_onnx: Path) -> None:
    converted, made = resolver.ensure_converted(zoo.get_card(MODEL), checkpoint)
    assert made
    optimized = DepthEstimator(weights=converted_onnx).model_file.path
    for path in (converted, optimized, converted.parent / derive.MANIFEST):
        assert path.stat().st_mode & 0o777 == 0o644, path


def test_a_changed_recipe_input_is_a_new_derivation(checkpoint: Path, tmp_path: Path) -> None:
    card = zoo.get_card(MODEL)
    first, made = resolver.ensure_converted(card, checkpoint)
    again, made_again = resolver.ensure_converted(card, checkpoint)
    assert (again, made, made_again) == (first, True, False)
    other = tmp_path / "other.pt"
    data = bytearray(checkpoint.read_bytes())
    other.write_bytes(bytes(data))
    # Same bytes under another name: the same derivation (the key is the content).
    assert resolver.ensure_converted(card, other)[0] == first


def test_two_cards_never_share_a_derivation_of_the_same_bytes(tmp_path: Path) -> None:
    """Depth Anything V2 Small and its metric variant share keys and shapes, so generated
    weights are the same file; each card still gets its own file (with its own metadata)."""
    source = tmp_path / "same.bin"
    source.write_bytes(b"the same checkpoint bytes")

    def make(src: Path, target: Path) -> None:
        target.write_bytes(src.read_bytes())

    def run(model: str) -> tuple[Path, bool]:
        return derive.derive(
            "test_copy",
            1,
            source,
            model=model,
            output=f"{model}.bin",
            params={},
            tools={},
            make=make,
        )

    small, made_small = run("depth_anything_v2_small")
    metric, made_metric = run("depth_anything_v2_metric_indoor_small")
    assert made_small and made_metric
    assert small.parent != metric.parent
    assert run("depth_anything_v2_small") == (small, False)


def test_a_model_without_official_onnx_and_without_torch_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(resolver, "torch_available", lambda: False)
    with pytest.raises(BackendUnavailableError) as info:
        DepthEstimator("dpt_hybrid_384").load()
    message = str(info.value)
    assert "no official ONNX export" in message
    assert "depthlite[torch]" in message
    assert "depthlite convert --model dpt_hybrid_384 -o" in message


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
