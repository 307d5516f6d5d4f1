"""After a big image the server gives its memory back: RSS returns near its idle level."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from servekit import serve

SIDE = 4000  # 16 MP: every stage allocates hundreds of MB (the depth alone is 64 MB float32)
SLACK_MB = 50  # the bound
SETTLE = 4.0  # seconds: the server trims 0.5 s and 3 s after its last response


def _rss_mb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmRSS"))


def _big_jpeg() -> bytes:
    ramp = np.linspace(0, 255, SIDE, dtype=np.float32)
    img = np.dstack([(ramp[:, None] + ramp[None, :]) / 2] * 3).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return buf.tobytes()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")
def test_rss_returns_to_idle_after_big_images(converted_onnx: Path, tmp_path: Path) -> None:
    data = _big_jpeg()
    with serve(converted_onnx, tmp_path, "--threads", "1") as served:
        pid = served.proc.pid
        with httpx.Client(base_url=served.base, timeout=120) as client:
            client.post("/v1/depth?format=json", content=b"x")  # first request's one-off costs
            time.sleep(SETTLE)
            idle = _rss_mb(pid)
            after: dict[str, int] = {}
            for fmt in ("color", "png16", "npy"):
                response = client.post(f"/v1/depth?format={fmt}", content=data)
                assert response.status_code == 200, response.text
                time.sleep(SETTLE)
                after[fmt] = _rss_mb(pid)
    assert max(after.values()) - idle <= SLACK_MB, (idle, after)
