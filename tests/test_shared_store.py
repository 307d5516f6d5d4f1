"""The shared store of distributed jobs: a folder, and S3 (against moto's S3 emulator)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from depthlite.errors import InvalidOptionError
from depthlite.jobs.shared import FolderStore, S3Store, SharedStore, open_store


@pytest.fixture
def s3_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Store]:
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        import boto3

        boto3.client("s3").create_bucket(Bucket="depth-bucket")
        store = open_store("s3://depth-bucket/jobs")
        assert isinstance(store, S3Store)
        yield store


@pytest.fixture(params=["folder", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> SharedStore:
    if request.param == "folder":
        return open_store(tmp_path / "store")
    return request.getfixturevalue("s3_store")


def test_put_get_exists_delete(store: SharedStore, tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(b"depth" * 1000)
    assert not store.exists("inputs/job1/in.bin")
    store.put_file("inputs/job1/in.bin", source)
    store.put_bytes("inputs/job1/small", b"abc")
    assert store.exists("inputs/job1/in.bin")
    assert not store.exists("inputs/job1/in")  # a prefix is not a key
    out = tmp_path / "out.bin"
    store.get_file("inputs/job1/in.bin", out)
    assert out.read_bytes() == source.read_bytes()
    assert store.get_bytes("inputs/job1/small") == b"abc"
    store.delete_prefix("inputs/job1")
    assert not store.exists("inputs/job1/in.bin")
    assert not store.exists("inputs/job1/small")


def test_folder_store_refuses_keys_that_escape(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "store")
    with pytest.raises(ValueError, match="leaves the store"):
        store.put_bytes("../outside", b"x")
    with pytest.raises(FileNotFoundError, match="missing"):
        store.get_file("missing", tmp_path / "x")
    assert open_store(f"file://{tmp_path / 'store'}").url == store.url


def test_s3_url_needs_a_bucket() -> None:
    with pytest.raises(InvalidOptionError, match="no bucket"):
        open_store("s3://")
