"""The registry: cards as data, one lookup, and the errors a wrong model or file gets."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from conftest import MODEL
from depthlite import CARDS, DepthEstimator, get_card
from depthlite.cli.main import main
from depthlite.errors import InvalidOptionError, UnknownModelError, WeightsError
from depthlite.zoo.architectures import ARCHITECTURES, identify_checkpoint, meta_network


def test_names_and_aliases_are_unique_and_every_card_is_complete() -> None:
    names = [n for card in CARDS.values() for n in (card.name, *card.aliases)]
    assert len(names) == len(set(names))
    for card in CARDS.values():
        assert card.architecture in ARCHITECTURES
        assert card.licence.spdx and card.licence.url.startswith("https://")
        assert card.checkpoints and all(a.sources for a in card.checkpoints)
        pre = card.preprocess
        assert pre.size % pre.multiple_of == 0
        # The card's parameter count is the network's: facts are checked, not trusted.
        params = sum(p.numel() for p in meta_network(card).parameters())
        assert params == card.params, card.name


def test_licences_as_the_model_pages_state_them() -> None:
    assert not get_card("depth_anything_v2_base").licence.commercial
    assert get_card("depth_anything_v2_large").licence.spdx == "CC-BY-NC-4.0"
    metric = get_card("depth_anything_v2_metric_indoor_small").licence
    assert metric.spdx == "Apache-2.0" and "relative models only" in metric.note
    assert {c.licence.spdx for c in CARDS.values() if c.family == "midas"} == {"MIT"}


def test_unknown_model_lists_the_known_names() -> None:
    with pytest.raises(UnknownModelError) as info:
        DepthEstimator("nope")
    assert all(name in str(info.value) for name in CARDS)


def test_cli_unknown_model_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", "x.jpg", "--model", "nope"]) == 2
    assert "known models: midas_v21_small_256, midas_v21_384" in capsys.readouterr().err


def test_another_models_checkpoint_names_the_model_it_looks_like(
    checkpoint: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["convert", "--model", "dpt_hybrid_384", "--weights", str(checkpoint), "-q"])
    err = capsys.readouterr().err
    assert code == 1
    assert "not a dpt_hybrid_384 checkpoint" in err
    assert "pass --model midas_v21_small_256" in err


def test_identify_names_every_card_that_shares_a_layout() -> None:
    from depthlite.models.synthetic import synthetic_state_dict

    assert identify_checkpoint(synthetic_state_dict(MODEL)) == [MODEL]
    assert identify_checkpoint({"foo": __import__("torch").zeros(1)}) == []


def test_an_onnx_file_of_another_model_is_refused(converted_onnx: Path) -> None:
    with pytest.raises(WeightsError, match=r"made for model 'midas_v21_small_256'.*--model"):
        DepthEstimator("depth_anything_v2_small", weights=converted_onnx).load()


def test_a_fixed_size_file_that_cannot_fit_the_card_is_refused(official_style_onnx: Path) -> None:
    # 256x256 (no metadata): not a multiple of 14, so not a Depth Anything input.
    with pytest.raises(WeightsError, match="multiples of 14"):
        DepthEstimator("depth_anything_v2_small", weights=official_style_onnx).load()


def test_exported_files_describe_themselves(converted_onnx: Path) -> None:
    meta = {p.key: p.value for p in onnx.load(str(converted_onnx)).metadata_props}
    assert meta["depthlite.model"] == MODEL
    assert meta["depthlite.input_size"] == "256" and meta["depthlite.multiple_of"] == "32"
    assert meta["depthlite.resize_rule"] == "upper_bound"
    assert meta["depthlite.mean"] == "0.485,0.456,0.406"
    assert meta["depthlite.output_kind"] == "relative_inverse_depth"
    assert meta["depthlite.normalizes_inside"] == "false"


def test_convert_and_quantize_write_the_verified_file_where_asked(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mine" / "small.onnx"
    assert main(["convert", "--weights", str(checkpoint), "-o", str(out), "-q"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["depthlite.model"] == MODEL
    assert DepthEstimator(weights=out).predict(__import__("numpy").zeros((40, 50, 3), "uint8"))
    int8 = tmp_path / "small-int8.onnx"
    args = ["quantize", "--weights", str(out), "--no-eval", "-o", str(int8)]
    assert main(args) == 0
    meta = {p.key: p.value for p in onnx.load(str(int8)).metadata_props}
    assert (meta["depthlite.precision"], meta["depthlite.model"]) == ("int8", MODEL)
    assert main(["convert", "--weights", str(checkpoint), "-o", str(tmp_path / "x.pt")]) == 2


def test_models_command_shows_licences_and_derived_files(
    checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["convert", "--weights", str(checkpoint), "-q"]) == 0
    capsys.readouterr()
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "licence CC-BY-NC-4.0 (NON-COMMERCIAL use only)" in out
    assert "export_onnx" in out and "made from midas_v21_small_256.pt" in out
    assert main(["models", "dpt_large"]) == 0
    assert capsys.readouterr().out.count("\n\n") == 1


def test_manifests_are_json_with_the_recipe_facts(checkpoint: Path) -> None:
    from depthlite.zoo import derive
    from depthlite.zoo.resolver import ensure_converted

    path, _ = ensure_converted(get_card(MODEL), checkpoint)
    manifest = json.loads((path.parent / derive.MANIFEST).read_text())
    assert manifest["recipe"] == "export_onnx" and manifest["model"] == MODEL
    assert set(manifest["tools"]) == {"torch", "onnx", "onnxruntime"}
    assert manifest["params"]["opset"] == 17


def test_a_non_commercial_model_says_so_once_per_process(
    converted_onnx: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import dataclasses
    import logging

    from depthlite import estimator, zoo

    card = get_card(MODEL)
    licence = dataclasses.replace(card.licence, spdx="CC-BY-NC-4.0", commercial=False)
    monkeypatch.setitem(zoo.CARDS, MODEL, dataclasses.replace(card, licence=licence))
    estimator._licence_notice.cache_clear()
    with caplog.at_level(logging.WARNING, logger="depthlite"):
        for _ in range(2):
            DepthEstimator(weights=converted_onnx, progress=False).load()
    notices = [r.getMessage() for r in caplog.records if "non-commercial" in r.getMessage()]
    assert notices == [
        f"{MODEL} is licensed CC-BY-NC-4.0: non-commercial use only ({card.licence.url})"
    ]


def test_input_size_trades_detail_for_speed_within_the_cards_multiple(
    converted_onnx: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import numpy as np

    est = DepthEstimator(weights=converted_onnx, input_size=192, progress=False)
    result = est.predict(np.zeros((480, 640, 3), np.uint8))
    assert result.network_output.shape == (128, 192) and result.depth.shape == (480, 640)
    with pytest.raises(InvalidOptionError, match="multiple of 14"):
        DepthEstimator("depth_anything_v2_small", input_size=500)
    photo = tmp_path / "p.png"
    __import__("cv2").imwrite(str(photo), np.zeros((30, 40, 3), np.uint8))
    assert (
        main(["predict", str(photo), "--input-size", "100", "--weights", str(converted_onnx)]) == 2
    )
    assert "use a multiple of 32" in capsys.readouterr().err
