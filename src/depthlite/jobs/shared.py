"""The shared store of distributed jobs: where inputs and results travel, by reference.

Redis carries only small messages (the job's options and file *keys*; inputs under
``INLINE_LIMIT`` bytes travel inline). Files go through a store every worker and the server can
reach: a folder (local, or a network mount) or an S3-compatible bucket (``s3://bucket/prefix``,
with ``boto3``; the endpoint comes from the usual ``AWS_*`` variables, e.g. ``AWS_ENDPOINT_URL``
for MinIO). Writes are atomic: a key is either absent or complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path

from depthlite.errors import InvalidOptionError
from depthlite.fsutil import atomic_path

__all__ = ["INLINE_LIMIT", "FolderStore", "S3Store", "SharedStore", "open_store"]

# Inputs up to this size ride inside the Celery message (base64): a thumbnail does not need
# a round trip through the store; anything larger does.
INLINE_LIMIT = 64 * 1024


class SharedStore(ABC):
    url: str

    @abstractmethod
    def put_file(self, key: str, path: Path) -> None: ...

    @abstractmethod
    def get_file(self, key: str, dest: Path) -> None: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete_prefix(self, prefix: str) -> None: ...

    def put_bytes(self, key: str, data: bytes) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "data"
            path.write_bytes(data)
            self.put_file(key, path)

    def get_bytes(self, key: str) -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "data"
            self.get_file(key, path)
            return path.read_bytes()


class FolderStore(SharedStore):
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError(f"store key {key!r} leaves the store")
        return path

    def put_file(self, key: str, path: Path) -> None:
        with atomic_path(self._path(key)) as tmp:
            shutil.copyfile(path, tmp)

    def get_file(self, key: str, dest: Path) -> None:
        source = self._path(key)
        if not source.is_file():
            raise FileNotFoundError(f"{key} is not in the shared store {self.url}")
        shutil.copyfile(source, dest)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self._path(prefix), ignore_errors=True)


class S3Store(SharedStore):
    """``s3://bucket/prefix`` through boto3 (extra ``queue``): AWS S3, MinIO, Ceph, R2..."""

    def __init__(self, url: str) -> None:
        try:
            import boto3
        except ImportError:
            raise InvalidOptionError(
                f"{url} needs boto3: pip install 'depthlite[s3]' (or use a shared folder)"
            ) from None
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise InvalidOptionError(f"no bucket in {url!r}; expected s3://bucket/prefix")
        self.url = url
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_file(self, key: str, path: Path) -> None:
        self.client.upload_file(str(path), self.bucket, self._key(key))  # a PUT is atomic

    def get_file(self, key: str, dest: Path) -> None:
        self.client.download_file(self.bucket, self._key(key), str(dest))

    def exists(self, key: str) -> bool:
        listing = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._key(key), MaxKeys=1)
        return any(item["Key"] == self._key(key) for item in listing.get("Contents", []))

    def delete_prefix(self, prefix: str) -> None:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})


def open_store(url: str | Path) -> SharedStore:
    """A folder path (or ``file://`` URL), or ``s3://bucket/prefix``."""
    text = str(url)
    if text.startswith("s3://"):
        return S3Store(text)
    return FolderStore(Path(text.removeprefix("file://")))
