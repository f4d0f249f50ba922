"""What every worker does besides running jobs: take over the jobs of workers that stopped
beating, give up on a job that keeps killing its workers, and forget old finished jobs."""
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import Job

from .conftest import job_of, read_job, start, vectors

INDEX = {"similar": {"by": "vec"}}


@pytest.fixture
def abandoned(jobs_api, settings):
    """A job left running by a worker that died (its heartbeat stale past the lease)."""
    settings.ISTORE_JOBS_LEASE = 5
    vectors(jobs_api, "/u/", 5)
    job = job_of(start(jobs_api, "/u/", "_create_index", INDEX))
    stale = timezone.now() - timedelta(seconds=60)
    Job.objects.filter(id=job).update(state=Job.RUNNING, worker="gone:1:x", heartbeat=stale, started=stale,
                                      attempts=1)
    return job


def test_a_worker_takes_over_a_job_whose_worker_died(jobs_api, abandoned, run_jobs):
    run_jobs()
    data = read_job(jobs_api, abandoned)
    assert data["state"] == "done" and data["result"]["indexed"] == 5, f"the job was run again to its end: {data}"
    assert data["attempts"] == 2


def test_a_job_within_its_lease_is_left_to_its_worker(jobs_api, abandoned, run_jobs, settings):
    settings.ISTORE_JOBS_LEASE = 600
    run_jobs()
    assert read_job(jobs_api, abandoned)["state"] == "running", "a worker that still beats keeps its job"


def test_a_job_that_lost_its_worker_too_often_fails(jobs_api, abandoned, run_jobs, settings):
    Job.objects.filter(id=abandoned).update(attempts=settings.ISTORE_JOBS_MAX_ATTEMPTS)
    run_jobs()
    data = read_job(jobs_api, abandoned)
    assert data["state"] == "failed" and data["error"]["error"] == "worker_lost", data


def test_finished_jobs_are_forgotten_after_the_retention(jobs_api, run_jobs, settings):
    vectors(jobs_api, "/r/", 2)
    old, recent = (job_of(start(jobs_api, "/r/", "_create_index", INDEX)) for _ in range(2))
    run_jobs()
    Job.objects.filter(id=old).update(finished=timezone.now() - timedelta(seconds=settings.ISTORE_JOBS_RETENTION + 1))
    run_jobs()  # a worker's upkeep
    assert jobs_api.client.get(f"/_jobs/{old}").status_code == 404, "a job past its retention is gone"
    assert read_job(jobs_api, recent)["state"] == "done", "a recent one stays"
