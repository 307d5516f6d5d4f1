"""The job store's state machine: transitions only from live states, restarts, crash loops."""

from __future__ import annotations

from pathlib import Path

import pytest

from depthlite.jobs.spec import JobSpec, JobStateError
from depthlite.jobs.store import JobStore


def _store_with_job(tmp_path: Path) -> tuple[JobStore, str]:
    store = JobStore(tmp_path / "jobs", ttl=60)
    source = tmp_path / "000000_a.png"
    source.write_bytes(b"x")
    return store, store.create(JobSpec(), [source], owner="o").id


def test_a_job_claimed_before_the_cancel_is_flagged_not_lost(tmp_path: Path) -> None:
    store, job_id = _store_with_job(tmp_path)
    assert store.claim_next() is not None  # the runner wins the race
    assert store.cancel(job_id, "o").state == "running"
    assert store.cancel_requested(job_id)


def test_final_states_stay_final(tmp_path: Path) -> None:
    store, job_id = _store_with_job(tmp_path)
    assert store.cancel(job_id, "o").state == "cancelled"
    assert not store.finish(job_id, "out.png", [])  # a runner finishing late changes nothing
    assert not store.fail(job_id, "late")
    assert store.get(job_id).state == "cancelled"
    with pytest.raises(JobStateError, match="already cancelled"):
        store.cancel(job_id, "o")


def test_a_deleted_job_is_not_resurrected(tmp_path: Path) -> None:
    store, job_id = _store_with_job(tmp_path)
    store.claim_next()
    store.delete(job_id)
    assert not store.finish(job_id, "out.png", [])
    assert not store.exists(job_id)


def test_a_job_that_keeps_stopping_the_server_fails_after_max_tries(tmp_path: Path) -> None:
    store, job_id = _store_with_job(tmp_path)
    for _ in range(2):
        store.claim_next()
        assert store.recover(max_tries=3) == 1  # restarted
    store.claim_next()  # third start
    assert store.recover(max_tries=3) == 0
    job = store.get(job_id)
    assert job.state == "failed"
    assert job.error is not None and "gave up after 3 attempts" in job.error
