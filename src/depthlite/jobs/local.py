"""The embedded job runner: no extra services, jobs survive restarts.

A background thread takes queued jobs from the :class:`JobStore` one at a time (oldest first)
and runs them with :func:`execute_job`; the CPU work goes through ``run`` (the server's bounded
worker pool), one image or video frame per pool job, so a long job never holds the pool and
uploads keep flowing. On start, jobs a crash left ``running`` are queued again; on stop, a
running job is interrupted at its next step and left ``running`` so the next start restarts it.
Expired jobs are deleted as the runner goes.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable

from depthlite.errors import DepthliteError
from depthlite.estimator import DepthEstimator
from depthlite.jobs.execute import RunFn, execute_job
from depthlite.jobs.spec import JobCancelledError
from depthlite.jobs.store import Job, JobStore

__all__ = ["EmbeddedRunner", "EstimatorPicker"]

# A job's model name (None: the default) -> the estimator that serves it.
EstimatorPicker = Callable[[str | None], DepthEstimator]

logger = logging.getLogger(__name__)

_IDLE_POLL_SECONDS = 1.0
_EXPIRE_EVERY_SECONDS = 30.0
_ERROR_BACKOFF = 5.0


class _StoppingError(Exception):
    """The runner is stopping: leave the job as it is (it restarts on the next start)."""


class EmbeddedRunner:
    def __init__(
        self, store: JobStore, pick: EstimatorPicker, run: RunFn, *, max_tries: int = 3
    ) -> None:
        self.store = store
        self.max_tries = max_tries
        # The estimator of a job's model (None: the server's default model).
        self.pick = pick
        self.run = run
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_expiry = 0.0
        self.current: str | None = None

    def start(self) -> None:
        self.store.recover(self.max_tries)
        self._thread = threading.Thread(target=self._loop, name="depthlite-jobs", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """A job was queued or cancelled: look now instead of at the next poll."""
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _loop(self) -> None:
        while not self.stopping:
            try:
                self._step()
            except Exception:
                # A full disk or a locked database must not end job processing for good.
                logger.exception("job runner step failed; retrying in %g s", _ERROR_BACKOFF)
                self._wake.wait(_ERROR_BACKOFF)

    def _step(self) -> None:
        self._maybe_expire()
        job = self.store.claim_next()
        if job is None:
            self._wake.wait(_IDLE_POLL_SECONDS)
            self._wake.clear()
            return
        self.current = job.id
        try:
            self._run_one(job)
        finally:
            self.current = None

    def _maybe_expire(self) -> None:
        now = time.monotonic()
        if now - self._last_expiry >= _EXPIRE_EVERY_SECONDS:
            self._last_expiry = now
            removed = self.store.expire()
            if removed:
                logger.info("deleted %d expired job(s)", len(removed))

    def _cancelled(self, job_id: str) -> bool:
        if self.stopping:
            raise _StoppingError
        return self.store.cancel_requested(job_id)

    def _run_one(self, job: Job) -> None:
        logger.info("job %s started (%s, attempt %d)", job.id, job.spec.kind, job.attempts)
        start = time.perf_counter()
        try:
            outcome = execute_job(
                job.spec,
                self.store.input_paths(job),
                self.store.folder(job.id),
                self.pick(job.spec.model),
                run=self.run,
                progress=lambda done, total: self.store.progress(job.id, done, total),
                cancelled=lambda: self._cancelled(job.id),
            )
        except _StoppingError:
            logger.info("job %s interrupted by shutdown; it restarts on the next start", job.id)
            return
        except JobCancelledError:
            self.store.mark_cancelled(job.id)
            logger.info("job %s cancelled", job.id)
            return
        except DepthliteError as exc:
            if self.stopping:  # e.g. the pool refused work because the server is stopping
                logger.info("job %s interrupted by shutdown; it restarts on the next start", job.id)
                return
            self.store.fail(job.id, str(exc), getattr(exc, "failures", None))
            logger.info("job %s failed: %s", job.id, exc)
            return
        except Exception as exc:
            logger.exception("job %s failed unexpectedly", job.id)
            self.store.fail(job.id, f"internal error: {exc}")
            return
        relative = outcome.result.relative_to(self.store.folder(job.id)).as_posix()
        if not self.store.finish(job.id, relative, outcome.failures):
            # Cancelled at the last moment, or deleted: its row decides, the files go.
            if not self.store.exists(job.id):
                shutil.rmtree(self.store.folder(job.id), ignore_errors=True)
            return
        logger.info("job %s done in %.1f s", job.id, time.perf_counter() - start)
