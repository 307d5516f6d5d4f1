"""Shared fixtures: a synthetic official-layout checkpoint and its conversions, made once.

Official weights cannot be downloaded in CI; the conformance data was produced by the original
MiDaS code with the same deterministic weights these fixtures generate.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pytest

from depthlite import DepthEstimator

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

pytest_plugins = ["httpserver"]  # the local HTTP server fixture for download tests

DATA = Path(__file__).parent / "data"
MODEL = "midas_v21_small_256"
# |ours - reference| allowed, as a fraction of the reference's range (conformance README).
TOLERANCE = 1e-4


def rel_error(got: np.ndarray, expected: np.ndarray) -> float:
    """Largest absolute difference as a fraction of the expected output's range."""
    assert got.shape == expected.shape, (got.shape, expected.shape)
    return float(np.max(np.abs(got.astype(np.float64) - expected))) / float(np.ptp(expected))


def test_image(seed: int, height: int, width: int) -> np.ndarray:
    """The conformance recipe for a test image: uniform random RGB uint8."""
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


test_image.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def random_depth(seed: int, shape: tuple[int, int] = (30, 40)) -> np.ndarray:
    """Depths uniform in 0.5..8 (metres, say): a ground truth with no structure to exploit."""
    return np.random.default_rng(seed).uniform(0.5, 8.0, shape)


@pytest.fixture(autouse=True)
def _isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never touch the user's cache or the network: every test gets its own empty cache."""
    monkeypatch.setenv("DEPTHLITE_HOME", str(tmp_path_factory.mktemp("home")))
    monkeypatch.setenv("DEPTHLITE_OFFLINE", "1")
    monkeypatch.delenv("DEPTHLITE_MODEL_MIRROR", raising=False)


@pytest.fixture(scope="session")
def pipeline_reference() -> dict[str, np.ndarray]:
    with np.load(DATA / f"{MODEL}_pipeline_seed10_480x640.npz") as data:
        return dict(data)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic checkpoint in the official key layout."""
    from depthlite.models.synthetic import synthetic_checkpoint

    return synthetic_checkpoint(tmp_path_factory.mktemp("ckpt") / "midas_v21_small_256.pt")


@pytest.fixture(scope="session")
def converted_onnx(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic checkpoint converted by our converter (dynamic H, W)."""
    from depthlite.models.convert import convert_checkpoint
    from depthlite.zoo import get_card as get_spec

    out = tmp_path_factory.mktemp("onnx") / "converted.onnx"
    return convert_checkpoint(checkpoint, out, get_spec(MODEL))


@pytest.fixture(scope="session")
def int8_onnx(converted_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The converted file quantized by our INT8 recipe (two calibration photos, for speed)."""
    from depthlite.models import quantize
    from depthlite.zoo import get_card

    photos = quantize.sample_photos(("astronaut", "coffee"))
    out = tmp_path_factory.mktemp("int8") / "model-int8.onnx"
    return quantize.quantize_model(converted_onnx, out, get_card(MODEL), photos)


@pytest.fixture(scope="session")
def exported_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """model name -> its synthetic checkpoint exported by our recipe (verified); made once.

    Files of models with more than 50 M parameters are deleted when the next model is asked
    for (tests ask model by model), so at most one large file is on disk at a time.
    """
    import gc

    from depthlite.models.convert import convert_checkpoint
    from depthlite.models.synthetic import synthetic_checkpoint
    from depthlite.zoo import get_card

    made: dict[str, Path] = {}
    root = tmp_path_factory.mktemp("zoo")

    def get(model: str) -> Path:
        card = get_card(model)
        if card.name not in made:
            for name, old in list(made.items()):
                if get_card(name).params > 50_000_000:
                    old.unlink(missing_ok=True)
                    del made[name]
            checkpoint = synthetic_checkpoint(root / f"{card.name}.pt", card.name)
            gc.collect()
            made[card.name] = convert_checkpoint(checkpoint, root / f"{card.name}.onnx", card)
            checkpoint.unlink()
        return made[card.name]

    return get


@pytest.fixture(scope="session")
def official_style_onnx(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ONNX file laid out like the official ``model-small.onnx``.

    Fixed 1x3x256x256 input, RGB in [0, 1], ImageNet normalisation inside the graph, no
    depthlite metadata. (The official file is opset 9 with its upsampling switched to
    align_corners=False; opset 9 cannot express align_corners=True, so this one is opset 11 and
    keeps the network exact: the tests are about the layout, not about that export's drift.)
    """
    import torch

    from depthlite.models.checkpoint import load_state_dict
    from depthlite.zoo import get_card
    from depthlite.zoo.architectures import build_network

    card = get_card(MODEL)
    net = build_network(card, load_state_dict(checkpoint))
    net.set_static_padding(True)

    class WithNormalisation(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net
            self.register_buffer("mean", torch.tensor(card.preprocess.mean).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(card.preprocess.std).view(1, 3, 1, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net((x - self.mean) / self.std)

    out = tmp_path_factory.mktemp("official") / "model-small.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        torch.onnx.export(
            WithNormalisation().eval(),
            (torch.zeros(1, 3, 256, 256),),
            str(out),
            input_names=["input.1"],  # names unlike ours: the backend must read them
            output_names=["depth.out"],
            opset_version=11,
            dynamo=False,
        )
    return out


def make_clip(
    path: Path, *, audio: bool = True, seconds: float = 2, size: tuple[int, int] = (96, 64)
) -> Path:
    """A small generated H.264 clip (FFmpeg's testsrc2, 10 fps), with a sine tone if ``audio``."""
    import subprocess

    from depthlite.video.ffmpeg import ffmpeg_executable

    width, height = size
    args = [ffmpeg_executable(), "-hide_banner", "-v", "error", "-y", "-f", "lavfi"]
    args += ["-i", f"testsrc2=size={width}x{height}:rate=10:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "aac"]
    args += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-shortest", str(path)]
    subprocess.run(args, check=True)
    return path


@pytest.fixture(scope="session")
def video_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 s, 96x64, 10 fps, with audio."""
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4")


@pytest.fixture(scope="session")
def clip_bytes(video_clip: Path) -> bytes:
    return video_clip.read_bytes()


E = TypeVar("E", bound=DepthEstimator)


def loaded_estimator(
    weights: Path, factory: pytest.TempPathFactory, cls: type[E] = DepthEstimator, **kwargs: Any
) -> E:
    """An estimator (1 thread) loaded with its cache in a fresh folder.

    For module-scoped fixtures: they run before the per-test cache isolation above, so without
    this they would write the optimised-graph cache into the user's real cache.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEPTHLITE_HOME", str(factory.mktemp("estimator-home")))
        mp.setenv("DEPTHLITE_OFFLINE", "1")
        est = cls(weights=weights, threads=1, progress=False, **kwargs)
        est.load()
    return est


class SlowEstimator(DepthEstimator):
    """Holds each prediction ``delay`` seconds, so that work piles up behind it."""

    def __init__(self, *args: Any, delay: float = 0.3, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delay = delay

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        time.sleep(self.delay)
        return super().predict(*args, **kwargs)


@pytest.fixture(scope="module")
def app_client(
    converted_onnx: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """An app with default settings (its own jobs folder) on the synthetic model, ready."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from depthlite.server import Settings, create_app

    estimator = loaded_estimator(converted_onnx, tmp_path_factory)
    settings = Settings(jobs_dir=tmp_path_factory.mktemp("jobs"))
    with TestClient(create_app(settings, estimator)) as client:
        wait_ready(client)
        yield client


def wait_ready(client: TestClient, timeout: float = 30.0) -> None:
    """Until the app's model is loaded and warmed up (``/readyz`` 200)."""
    deadline = time.monotonic() + timeout
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the model never became ready"
        time.sleep(0.02)
