"""
The jobs API for the rest of istore: register a kind of job, enqueue one,
read it, cancel it. Verbs become jobs through ``jobs.verbs``; another app
(recognition's background features, for one) registers its own kind:

    from jobs import queue

    @queue.register("recognition.features")
    def compute(params, progress):
        # params: the JSON object given to enqueue. Call progress(done, total)
        # between steps: it may raise queue.Stop (the job was cancelled, or its
        # worker is stopping and will hand it to another); let it propagate.
        ...
        return 200, {"computed": n}        # (HTTP status, JSON result)

    job = queue.enqueue("recognition.features", {"item": 42})    # -> jobs.models.Job

``enqueue`` writes the job in the caller's transaction (the engine keeps its
queue in the same database), so a write that rolls back leaves no job, and a
job whose write committed is never lost.

What a kind's function may rely on: it runs in a worker process (``manage.py
jobs_worker``, which gunicorn's configuration starts beside each host), on
any host, at least once and to the end once: a worker that dies mid-job
leaves the job to be run again from the start by another worker (after
``ISTORE_JOBS_LEASE`` seconds without its heartbeat), so the function must be
safe to run again (the verbs are: they rebuild, upsert, or only read). Only
the first run to finish records its result. An exception other than
``ApiError`` fails the job with ``job_failed``; an ``ApiError`` fails it with
the error the verb would have answered.

The engine is django-tasks with its database backend (``django_tasks_db``),
chosen in docs/deploy.md; nothing but ``jobs.running`` and the worker command
touch it.
"""
import time

from django.db import transaction
from django.utils import timezone

from .models import Job

KINDS = {}


class Stop(BaseException):
    """Raised by ``progress`` to end a job's run early. A BaseException, so
    that code catching Exception to carry on does not swallow it."""


class Cancelled(Stop):
    """The job was cancelled (or another worker took it over): stop, record nothing."""


class Interrupted(Stop):
    """The worker is shutting down: the job goes back to the queue for another."""


def register(kind):
    """Register the decorated ``function(params, progress) -> (status, result)`` as the job kind ``kind``."""

    def decorator(function):
        KINDS[kind] = function
        return function

    return decorator


def enqueue(kind, params, owner=None):
    """Queue a job of ``kind`` with ``params`` (JSON) for ``owner`` (a user, or None); the Job."""
    from .running import hand_to_engine

    if kind not in KINDS:
        raise ValueError(f"{kind!r} is not a registered job kind")
    with transaction.atomic():
        job = Job.objects.create(kind=kind, params=params, owner=owner)
        hand_to_engine(job.id)
    return job


def cancel(job):
    """Cancel a queued or running job; True if it was (a running one stops at its next progress step)."""
    return bool(Job.objects.filter(id=job.id, state__in=Job.UNFINISHED).update(
        state=Job.CANCELLED, finished=timezone.now(), worker="", heartbeat=None))


def wait(job, seconds, poll=0.1):
    """The job, re-read until it has finished or ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    while job.state in Job.UNFINISHED and time.monotonic() < deadline:
        time.sleep(min(poll, max(deadline - time.monotonic(), 0)))
        job.refresh_from_db()
    return job
