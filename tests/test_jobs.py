"""`/v1/jobs` with the embedded runner: results, polling, cancel, owners, expiry, restart."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from conftest import SlowEstimator, loaded_estimator, test_image
from depthlite import DepthEstimator
from depthlite.imageio import encode_outputs
from depthlite.jobs.spec import JobSpec
from depthlite.jobs.store import JobStore
from depthlite.server import Settings, create_app
from test_server import assert_error, png_bytes, wait_ready

IMAGES = [png_bytes(test_image(seed, 40, 56)) for seed in range(3)]


@pytest.fixture(scope="module")
def estimator(converted_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> DepthEstimator:
    return loaded_estimator(converted_onnx, tmp_path_factory)


def _slow(est: DepthEstimator) -> SlowEstimator:
    return SlowEstimator(weights=est.weights, threads=1, progress=False, delay=0.4)


def _app(est: DepthEstimator, jobs_dir: Path, **settings: Any) -> TestClient:
    return TestClient(create_app(Settings(jobs_dir=jobs_dir, **settings), est))


@pytest.fixture
def client(estimator: DepthEstimator, tmp_path: Path) -> Iterator[TestClient]:
    with _app(estimator, tmp_path / "jobs") as test_client:
        wait_ready(test_client)
        yield test_client


def _files(*names_and_data: tuple[str, bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("file", (name, data, "application/octet-stream")) for name, data in names_and_data]


def _submit(client: TestClient, files: list, **params: Any) -> dict[str, Any]:
    response = client.post("/v1/jobs", params=params, files=files)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/v1/jobs/{response.json()['id']}"
    return response.json()


def _wait(client: TestClient, job_id: str, states: tuple[str, ...] = ("done",), **kw: Any) -> dict:
    deadline = time.monotonic() + 60
    while True:
        body = client.get(f"/v1/jobs/{job_id}", **kw).json()
        if body["state"] in states:
            return body
        assert body["state"] not in {"failed", "cancelled"} - set(states), body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def test_image_job_gives_a_zip_of_every_output_and_reports_bad_inputs(
    client: TestClient, estimator: DepthEstimator
) -> None:
    files = _files(("a.png", IMAGES[0]), ("b.png", IMAGES[1]), ("broken.png", b"not an image"))
    job = _submit(client, files, format="color,npy")
    assert job["state"] in {"queued", "running"}
    assert len(job["id"]) >= 22  # 128 random bits
    done = _wait(client, job["id"])
    assert done["progress"] == {"done": 3, "total": 3, "fraction": 1.0}
    assert [f["input"] for f in done["failures"]] == ["broken.png"]
    assert done["failures"][0]["error"] == "unsupported_media_type"
    result = client.get(done["links"]["result"])
    assert result.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(result.content))
    assert sorted(archive.namelist()) == ["a.npy", "a_color.png", "b.npy", "b_color.png"]
    expected = estimator.predict(IMAGES[0])
    color = encode_outputs(expected.depth, expected.image, ["color"])["color"]
    assert archive.read("a_color.png") == color
    np.testing.assert_array_equal(np.load(io.BytesIO(archive.read("a.npy"))), expected.depth)


def test_every_upload_is_accounted_for_empty_ones_and_all_failing_jobs_too(
    client: TestClient, clip_bytes: bytes
) -> None:
    files = _files(("a.png", IMAGES[0]), ("empty.png", b""))
    done = _wait(client, _submit(client, files)["id"])
    assert [f["input"] for f in done["failures"]] == ["empty.png"]
    assert "empty input" in done["failures"][0]["detail"]

    video = _submit(client, _files(("clip.mp4", clip_bytes), ("unused", b"")), kind="auto")
    assert (video["kind"], video["inputs"]) == ("video", 1)  # a form's unused file input

    bad = _files(("x.png", b"not an image"), ("y.png", b""))
    job = _submit(client, bad)
    assert job["inputs"] == 2
    failed = _wait(client, job["id"], ("failed",))
    assert "every input failed (2)" in failed["error"]
    assert [f["input"] for f in failed["failures"]] == ["x.png", "y.png"]


def test_one_image_one_format_is_the_file_itself(client: TestClient) -> None:
    job = _submit(client, _files(("photo.png", IMAGES[2])), format="png16")
    _wait(client, job["id"])
    result = client.get(f"/v1/jobs/{job['id']}/result")
    assert result.headers["content-disposition"] == 'attachment; filename="photo_depth16.png"'
    assert result.content.startswith(b"\x89PNG")


def test_polling_hints_etag_and_retry_after(estimator: DepthEstimator, tmp_path: Path) -> None:
    slow = _slow(estimator)
    with _app(slow, tmp_path / "jobs") as client:
        wait_ready(client)
        job = _submit(client, _files(*(("x.png", img) for img in IMAGES[:1])))
        first = client.get(f"/v1/jobs/{job['id']}")
        assert first.headers["retry-after"] == "1"
        etag = first.headers["etag"]
        same = client.get(f"/v1/jobs/{job['id']}", headers={"if-none-match": etag})
        assert same.status_code in {304, 200}  # 200 only if the job moved on meanwhile
        early = client.get(f"/v1/jobs/{job['id']}/result")
        if early.status_code != 200:
            assert_error(early, 409, "job_not_done")
        done = _wait(client, job["id"])
        final = client.get(f"/v1/jobs/{job['id']}")
        assert "retry-after" not in final.headers
        assert final.headers["etag"] != etag
        assert (
            client.get(
                f"/v1/jobs/{job['id']}", headers={"if-none-match": final.headers["etag"]}
            ).status_code
            == 304
        )
        assert done["expires"] is not None


def test_cancel_queued_and_running_jobs_and_delete_finished(
    estimator: DepthEstimator, tmp_path: Path
) -> None:
    slow = _slow(estimator)
    with _app(slow, tmp_path / "jobs") as client:
        wait_ready(client)
        running = _submit(client, _files(*((f"{i}.png", IMAGES[i % 3]) for i in range(6))))
        queued = _submit(client, _files(("q.png", IMAGES[0])))
        _wait(client, running["id"], states=("running",))
        cancelled = client.delete(f"/v1/jobs/{queued['id']}")
        assert cancelled.status_code == 200
        assert cancelled.json()["state"] == "cancelled"
        stopping = client.delete(f"/v1/jobs/{running['id']}")
        assert stopping.status_code == 202
        body = _wait(client, running["id"], states=("cancelled",))
        assert body["progress"]["done"] < 6
        assert_error(client.get(f"/v1/jobs/{running['id']}/result"), 409, "job_not_done")
        assert client.delete(f"/v1/jobs/{running['id']}").status_code == 204
        assert_error(client.get(f"/v1/jobs/{running['id']}"), 404, "job_not_found")
        assert not (tmp_path / "jobs" / running["id"]).exists()


def test_jobs_belong_to_the_key_that_made_them(estimator: DepthEstimator, tmp_path: Path) -> None:
    with _app(estimator, tmp_path / "jobs", api_key="alpha-key, beta-key") as client:
        wait_ready(client)
        alpha = {"Authorization": "Bearer alpha-key"}
        beta = {"Authorization": "Bearer beta-key"}
        assert_error(
            client.post("/v1/jobs", files=_files(("a.png", IMAGES[0]))), 401, "unauthorized"
        )
        response = client.post("/v1/jobs", files=_files(("a.png", IMAGES[0])), headers=alpha)
        job_id = response.json()["id"]
        _wait(client, job_id, headers=alpha)
        for method, path in (("get", ""), ("get", "/result"), ("delete", "")):
            other = getattr(client, method)(f"/v1/jobs/{job_id}{path}", headers=beta)
            assert_error(other, 404, "job_not_found")
        assert client.get(f"/v1/jobs/{job_id}/result", headers=alpha).status_code == 200
        assert_error(client.get(f"/v1/jobs/{job_id}"), 401, "unauthorized")


def test_results_expire(estimator: DepthEstimator, tmp_path: Path) -> None:
    with _app(estimator, tmp_path / "jobs", job_ttl=0.5) as client:
        wait_ready(client)
        job = _submit(client, _files(("a.png", IMAGES[0])))
        _wait(client, job["id"])
        time.sleep(0.6)
        assert_error(client.get(f"/v1/jobs/{job['id']}"), 404, "job_not_found")
        store = client.app.state.service.jobs.store  # type: ignore[attr-defined]
        assert store.expire() == [job["id"]]
        assert not (tmp_path / "jobs" / job["id"]).exists()


def test_bad_job_requests(client: TestClient, clip_bytes: bytes) -> None:
    one = _files(("a.png", IMAGES[0]))
    assert_error(
        client.post("/v1/jobs", params={"percentiles": "x"}, files=one), 422, "invalid_option"
    )
    assert_error(
        client.post("/v1/jobs", params={"precision": "int8"}, files=one), 422, "invalid_option"
    )
    assert_error(
        client.post("/v1/jobs", params={"format": "gif"}, files=_files(("a.png", IMAGES[0]))),
        422,
        "invalid_option",
    )
    side_npz = client.post(
        "/v1/jobs", params={"format": "npz", "side": "true"}, files=_files(("a.mp4", clip_bytes))
    )
    assert "side=true" in assert_error(side_npz, 422, "invalid_option")["detail"]
    two_videos = _files(("a.mp4", clip_bytes), ("b.mp4", clip_bytes))
    assert_error(client.post("/v1/jobs", files=two_videos), 422, "invalid_option")
    assert_error(
        client.post("/v1/jobs", files=[("other", ("a.png", IMAGES[0], "image/png"))]),
        422,
        "missing_image",
    )
    assert_error(
        client.post(
            "/v1/jobs",
            params={"kind": "video", "format": "color"},
            files=_files(("a.mp4", clip_bytes)),
        ),
        422,
        "invalid_option",
    )


def test_a_bad_video_job_fails_naming_the_upload_not_the_server_path(
    client: TestClient, tmp_path: Path
) -> None:
    job = _submit(client, _files(("holiday.mp4", b"not a video at all")))
    failed = _wait(client, job["id"], states=("failed",))
    assert failed["error"].startswith("holiday.mp4: not a readable video")
    assert str(tmp_path) not in failed["error"]
    assert "/in/" not in failed["error"]


def test_video_job(client: TestClient, clip_bytes: bytes) -> None:
    options = {"percentiles": "5,95", "smoothing": 0.5, "preset": "ultrafast", "crf": 30}
    job = _submit(client, _files(("walk.mp4", clip_bytes)), max_frames=5, format="npz", **options)
    assert job["kind"] == "video"
    done = _wait(client, job["id"])
    assert done["progress"]["done"] == 5
    result = client.get(f"/v1/jobs/{job['id']}/result")
    assert result.headers["content-disposition"] == 'attachment; filename="walk_depth.npz"'
    with np.load(io.BytesIO(result.content)) as data:
        assert data["depth"].shape[0] == 5


def test_restart_loses_nothing(estimator: DepthEstimator, tmp_path: Path) -> None:
    jobs_dir = tmp_path / "jobs"
    slow = _slow(estimator)
    with _app(slow, jobs_dir, shutdown_timeout=5) as client:
        wait_ready(client)
        ids = [_submit(client, _files(*((f"{i}.png", IMAGES[i]) for i in range(3))))["id"]]
        ids += [_submit(client, _files(("one.png", IMAGES[0])))["id"] for _ in range(2)]
        _wait(client, ids[0], states=("running",))
    # The server stopped mid-job. A crash is harsher: a job left "running" with no runner.
    crashed = JobStore(jobs_dir, ttl=3600)
    spare = tmp_path / "000000_spare.png"
    spare.write_bytes(IMAGES[1])
    ids.append(crashed.create(JobSpec(), [spare], owner="").id)
    assert crashed.claim_next() is not None  # the oldest queued one is now "running"
    with _app(estimator, jobs_dir) as client:
        wait_ready(client)
        finals = [_wait(client, job_id) for job_id in ids]
    assert all(body["state"] == "done" for body in finals)
    assert finals[0]["attempts"] == 2  # interrupted once, restarted once
    assert finals[0]["progress"]["done"] == 3


def test_output_names_stay_unique_in_a_job(client: TestClient) -> None:
    files = _files(("x_3.png", IMAGES[0]), ("x.png", IMAGES[1]), ("x.jpg", IMAGES[2]))
    job = _submit(client, files)
    _wait(client, job["id"])
    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/v1/jobs/{job['id']}/result").content))
    assert sorted(archive.namelist()) == ["x_3_color.png", "x_4_color.png", "x_color.png"]


def test_non_finite_times_and_too_many_jobs_are_refused(
    estimator: DepthEstimator, tmp_path: Path, clip_bytes: bytes
) -> None:
    slow = _slow(estimator)
    with _app(slow, tmp_path / "jobs", max_jobs=2) as client:
        wait_ready(client)
        video = _files(("v.mp4", clip_bytes))
        assert_error(
            client.post("/v1/jobs", params={"end": "nan"}, files=video), 422, "invalid_parameter"
        )
        for _ in range(2):
            _submit(client, _files(("a.png", IMAGES[0])))
        full = client.post("/v1/jobs", files=_files(("a.png", IMAGES[0])))
        assert_error(full, 503, "too_many_jobs")
        assert full.headers["retry-after"] == "30"


@pytest.mark.parametrize(
    "params",
    [
        {"kind": "video", "max_frames": "9223372036854775808"},
        {"kind": "video", "max_frames": "100000001"},
        {"format": ",,,"},
        {"format": ""},
        {"format": "color,color"},
        {"smoothing": "-1e300"},
        {"percentiles": "98,2"},
        {"depth_smoothing": "1.5"},
        {"cut_threshold": "0"},
        {"kind": "video", "smoothing": "-1e300"},
        {"kind": "video", "percentiles": "98,2"},
        {"kind": "video", "format": "mp4,mp4"},
    ],
)
def test_every_job_option_is_bounded_for_images_and_video_alike(
    client: TestClient, params: dict[str, str]
) -> None:
    response = client.post("/v1/jobs", params=params, files=_files(("a.png", IMAGES[0])))
    assert response.status_code == 422, response.text
    assert response.json()["error"] in {"invalid_option", "invalid_parameter"}
    store = client.app.state.service.jobs.store  # type: ignore[attr-defined]
    assert store.counts() == {}  # nothing was queued


def test_upload_folders_a_killed_server_left_are_swept(
    estimator: DepthEstimator, tmp_path: Path
) -> None:
    uploads = tmp_path / "jobs" / "uploads"
    left = [uploads / "0123456789abcdef", uploads / "fedcba9876543210"]
    left[0].mkdir(parents=True)
    (left[0] / "000000_a.png").write_bytes(IMAGES[0])  # kill -9 mid-upload
    with _app(estimator, tmp_path / "jobs", upload_sweep_interval=0.2) as client:
        wait_ready(client)
        assert not left[0].exists()  # swept at start
        left[1].mkdir()  # as if another crash happened while this server runs
        _submit(client, _files(("a.png", IMAGES[0])))
        deadline = time.monotonic() + 10
        while left[1].exists():
            assert time.monotonic() < deadline, "never swept"
            time.sleep(0.05)
    assert list(uploads.iterdir()) == []


def test_a_job_progresses_while_uploads_saturate_the_pool(
    estimator: DepthEstimator, tmp_path: Path
) -> None:
    """8 clients post without backing off; the job still finishes, and they get answers."""
    import threading

    slow = SlowEstimator(weights=estimator.weights, threads=1, progress=False, delay=0.05)
    statuses: list[int] = []
    retry_after_missing: list[int] = []
    stop = threading.Event()
    with _app(slow, tmp_path / "jobs", workers=1, queue_size=2) as client:
        wait_ready(client)

        def hammer() -> None:
            while not stop.is_set():
                response = client.post("/v1/depth", content=IMAGES[0])
                statuses.append(response.status_code)
                if response.status_code == 503 and "retry-after" not in response.headers:
                    retry_after_missing.append(1)

        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(0.5)  # the pool is saturated before the job arrives
            start = time.monotonic()
            job = _submit(client, _files(*((f"{i}.png", IMAGES[i % 3]) for i in range(10))))
            done = _wait(client, job["id"])
            elapsed = time.monotonic() - start
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
    assert done["progress"]["done"] == 10
    # Measured here (2 shared cores): 20 images in 11 s. Before the fair lane, 2 of 20
    # images were done after 60 s (the review saw 1 of 40 in 30 s).
    assert elapsed < 20, elapsed
    assert set(statuses) <= {200, 503}, set(statuses)
    assert statuses.count(200) > 10  # uploads kept their share too
    assert not retry_after_missing
