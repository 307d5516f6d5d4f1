"""Job state in SQLite, job files in a folder: what survives a restart of ``depthlite serve``.

One row per job; one folder per job (``in/`` inputs, ``out/`` outputs, the result file). Every
state change is one SQL statement (or one ``BEGIN IMMEDIATE`` transaction), so a crash leaves
each job in a state it was really in; :meth:`JobStore.recover` then puts jobs that were
running back in the queue (their partial outputs are simply overwritten on the next run).
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from depthlite.errors import OutputError
from depthlite.jobs.spec import FINAL_STATES, JobNotFoundError, JobSpec, JobStateError

__all__ = ["Job", "JobStore", "new_job_id"]

logger = logging.getLogger(__name__)

# States a job can still move out of.
_LIVE = ("queued", "running")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    spec TEXT NOT NULL,
    inputs TEXT NOT NULL,
    state TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    total INTEGER,
    error TEXT,
    failures TEXT NOT NULL DEFAULT '[]',
    attempts INTEGER NOT NULL DEFAULT 0,
    result TEXT,
    cancel INTEGER NOT NULL DEFAULT 0,
    revision INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    finished REAL,
    expires REAL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, created);
"""


def new_job_id() -> str:
    """128 random bits, URL-safe: unguessable, so an id alone reveals nothing."""
    return secrets.token_urlsafe(16)


@dataclass(frozen=True)
class Job:
    id: str
    owner: str
    spec: JobSpec
    inputs: tuple[str, ...]  # file names under in/
    state: str
    done: int
    total: int | None
    error: str | None
    failures: tuple[dict[str, str], ...]
    attempts: int
    result: str | None
    cancel_requested: bool
    revision: int
    created: float
    updated: float
    finished: float | None
    expires: float | None

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        return cls(
            id=row["id"],
            owner=row["owner"],
            spec=JobSpec.from_json(row["spec"]),
            inputs=tuple(json.loads(row["inputs"])),
            state=row["state"],
            done=row["done"],
            total=row["total"],
            error=row["error"],
            failures=tuple(json.loads(row["failures"])),
            attempts=row["attempts"],
            result=row["result"],
            cancel_requested=bool(row["cancel"]),
            revision=row["revision"],
            created=row["created"],
            updated=row["updated"],
            finished=row["finished"],
            expires=row["expires"],
        )


class JobStore:
    """The jobs under ``root`` (``jobs.sqlite3`` + one folder per job); thread-safe."""

    def __init__(self, root: Path, ttl: float) -> None:
        self.root = Path(root)
        self.ttl = ttl
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"cannot keep jobs in {self.root}: {exc.strerror}; choose a writable folder "
                "(--jobs-dir)"
            ) from exc
        self._local = threading.local()
        try:
            self._db().executescript(_SCHEMA)  # it commits by itself: not in a transaction
        except sqlite3.OperationalError as exc:  # a folder it cannot write: "unable to open"
            if "unable to open" not in str(exc):
                raise
            raise OutputError(
                f"cannot keep jobs in {self.root}: {exc}; choose a writable folder (--jobs-dir)"
            ) from exc

    # ------------------------------------------------------------------ plumbing
    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.root / "jobs.sqlite3", timeout=30, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _update(
        self, job_id: str, sql: str, *args: object, states: tuple[str, ...] | None = None
    ) -> bool:
        """One row update; with ``states``, only from those states. True if a row changed.

        Every state transition names the states it may start from, so a racing cancel, a
        runner finishing, or a delete can never move a job out of a final state.
        """
        now = time.time()
        where = "id = ?"
        params: list[object] = [*args, now, job_id]
        if states is not None:
            where += f" AND state IN ({', '.join('?' for _ in states)})"
            params += list(states)
        cursor = self._db().execute(
            f"UPDATE jobs SET {sql}, updated = ?, revision = revision + 1 WHERE {where}", params
        )
        return cursor.rowcount > 0

    def folder(self, job_id: str) -> Path:
        return self.root / job_id

    def input_paths(self, job: Job) -> list[Path]:
        return [self.folder(job.id) / "in" / name for name in job.inputs]

    # ------------------------------------------------------------------ life cycle
    def create(
        self, spec: JobSpec, inputs: list[Path], owner: str, job_id: str | None = None
    ) -> Job:
        """A queued job whose inputs are the files in ``inputs`` (moved into its folder).

        Their names must be unique; give them an ``NNNNNN_`` index prefix to keep the order
        and allow repeated client names (:func:`~depthlite.jobs.execute.input_name` strips it).
        """
        names = [path.name for path in inputs]
        if len(set(names)) != len(names):
            raise ValueError("job input names must be unique")
        job_id = job_id or new_job_id()
        target = self.folder(job_id) / "in"
        target.mkdir(parents=True)
        for path in inputs:
            shutil.move(str(path), target / path.name)
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO jobs (id, owner, spec, inputs, state, total, created, updated) "
                "VALUES (?, ?, ?, ?, 'queued', ?, ?, ?)",
                (job_id, owner, spec.to_json(), json.dumps(names), len(names), now, now),
            )
        return self.get(job_id)

    def get(self, job_id: str, owner: str | None = None) -> Job:
        """The job; JobNotFoundError if unknown, expired, or (with ``owner``) someone else's."""
        row = self._db().execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFoundError.for_id(job_id)
        job = Job.from_row(row)
        expired = job.expires is not None and job.expires <= time.time()
        if expired or (owner is not None and not secrets.compare_digest(job.owner, owner)):
            raise JobNotFoundError.for_id(job_id)
        return job

    def claim_next(self) -> Job | None:
        """The oldest queued job, now running (attempts + 1), or None."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT id FROM jobs WHERE state = 'queued' ORDER BY created LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            self._update(row["id"], "state = 'running', attempts = attempts + 1, done = 0")
        return self.get(row["id"])

    def mark_running(self, job_id: str, attempts: int) -> None:
        """A remote worker started the job (distributed mode)."""
        self._db().execute(
            "UPDATE jobs SET state = 'running', attempts = ?, updated = ?, "
            "revision = revision + 1 WHERE id = ? AND state IN ('queued', 'running')",
            (attempts, time.time(), job_id),
        )

    def progress(self, job_id: str, done: int, total: int | None) -> None:
        self._update(job_id, "done = ?, total = ?", done, total, states=_LIVE)

    def finish(self, job_id: str, result: str, failures: list[dict[str, str]]) -> bool:
        """Running (or, in distributed mode, not yet seen running) -> done."""
        now = time.time()
        return self._update(
            job_id,
            "state = 'done', result = ?, failures = ?, finished = ?, expires = ?",
            result,
            json.dumps(failures),
            now,
            now + self.ttl,
            states=_LIVE,
        )

    def fail(self, job_id: str, reason: str, failures: list[dict[str, str]] | None = None) -> bool:
        now = time.time()
        return self._update(
            job_id,
            "state = 'failed', error = ?, failures = ?, finished = ?, expires = ?",
            reason,
            json.dumps(failures or []),
            now,
            now + self.ttl,
            states=_LIVE,
        )

    def cancel(self, job_id: str, owner: str | None = None) -> Job:
        """Queued: cancelled now. Running: flagged (the runner stops at the next step)."""
        self.get(job_id, owner)  # 404 for unknown and foreign ids alike
        now = time.time()
        with self._transaction() as db:
            # Read inside the transaction: the runner may claim the job meanwhile.
            row = db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            state = row["state"] if row is not None else "deleted"
            if state == "queued":
                self._update(
                    job_id,
                    "state = 'cancelled', finished = ?, expires = ?",
                    now,
                    now + self.ttl,
                    states=("queued",),
                )
            elif state == "running":
                self._update(job_id, "cancel = 1", states=("running",))
            else:
                raise JobStateError(f"job {job_id} is already {state}")
        return self.get(job_id)

    def mark_cancelled(self, job_id: str) -> bool:
        now = time.time()
        return self._update(
            job_id,
            "state = 'cancelled', finished = ?, expires = ?",
            now,
            now + self.ttl,
            states=_LIVE,
        )

    def cancel_requested(self, job_id: str) -> bool:
        row = self._db().execute("SELECT cancel FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return row is None or bool(row["cancel"])

    def recover(self, max_tries: int) -> int:
        """After a restart: jobs that were running go back to the queue. Returns how many.

        A job already started ``max_tries`` times fails instead: it may be what brought the
        process down (out of memory, a crashing codec), and must not crash it on every start.
        """
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET state = 'failed', error = ?, finished = ?, expires = ?, "
                "revision = revision + 1 WHERE state = 'running' AND attempts >= ?",
                (
                    f"gave up after {max_tries} attempts: the server stopped during each of "
                    "them (killed, or out of memory?)",
                    now,
                    now + self.ttl,
                    max_tries,
                ),
            )
            count = db.execute(
                "UPDATE jobs SET state = 'queued', revision = revision + 1 WHERE state = 'running'"
            ).rowcount
        if count:
            logger.info("%d interrupted job(s) queued again", count)
        return count

    def expire(self, now: float | None = None) -> list[str]:
        """Delete jobs (rows and files) whose results expired; returns their ids."""
        now = time.time() if now is None else now
        rows = (
            self._db()
            .execute("SELECT id FROM jobs WHERE expires IS NOT NULL AND expires <= ?", (now,))
            .fetchall()
        )
        for row in rows:
            shutil.rmtree(self.folder(row["id"]), ignore_errors=True)
            self._db().execute("DELETE FROM jobs WHERE id = ?", (row["id"],))
        return [row["id"] for row in rows]

    def exists(self, job_id: str) -> bool:
        return (
            self._db().execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is not None
        )

    def delete(self, job_id: str) -> None:
        """Remove a job and its files (a finished job its owner no longer wants)."""
        self._db().execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        shutil.rmtree(self.folder(job_id), ignore_errors=True)

    def unfinished(self) -> list[Job]:
        """Jobs still queued or running, oldest first."""
        rows = self._db().execute(
            "SELECT * FROM jobs WHERE state IN ('queued', 'running') ORDER BY created"
        )
        return [Job.from_row(row) for row in rows.fetchall()]

    def counts(self) -> dict[str, int]:
        rows = self._db().execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        return {row["state"]: row["n"] for row in rows}
