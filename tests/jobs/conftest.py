import json

import pytest
from django.core.management import call_command

from tests.conftest import Api


@pytest.fixture
def jobs_api(client, transactional_db, settings):
    """A client with anonymous writes allowed, over a database the worker's threads see
    (a job's heartbeat writes through its own connection)."""
    settings.ISTORE_ALLOW_ANONYMOUS_WRITES = True
    settings.ISTORE_JOBS_HEARTBEAT = 0.05
    return Api(client)


@pytest.fixture
def run_jobs():
    """Run every queued job in this process, as ``manage.py jobs_worker --batch`` does."""
    return lambda: call_command("jobs_worker", "--batch", verbosity=0)


def start(api, directory, verb, body, prefer="respond-async", **extra):
    """POST the verb with ``Prefer``; the response."""
    if prefer is not None:
        extra["HTTP_PREFER"] = prefer
    return api.verb(directory, verb, body, **extra)


def job_of(response):
    assert response.status_code == 202, f"expected 202 and a job, got {response.status_code}: {response.content[:300]}"
    return json.loads(response.content)["job"]


from tests.search.conftest import fresh_caches  # noqa: E402,F401 - autouse: per-process search caches per test


def vectors(api, directory, count, field="vec"):
    """``count`` items under ``directory`` with 2-number vectors in ``field``."""
    for i in range(count):
        assert api.post(f"{directory}{i:03d}", {field: [1, i]}).status_code == 201


def read_job(api, job_id, **extra):
    response = api.client.get(f"/_jobs/{job_id}", **extra)
    assert response.status_code == 200, f"GET /_jobs/{job_id}: {response.status_code} {response.content[:300]}"
    return json.loads(response.content)
