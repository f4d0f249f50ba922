"""
``GET /_jobs/{id}`` (a job's state, progress and result) and ``DELETE
/_jobs/{id}`` (cancel it).

A job is private to whoever started it: the request needs the credentials a
write needs (a token; or none where anonymous writes are allowed, which sees
only jobs started anonymously), and a token sees the jobs its user started,
or every job if the user is staff. Any other job, like an id that names none,
is 404 ``no_such_job``: ids of other users' jobs are not confirmed.
"""
import logging
import uuid

from django.db import InterfaceError, OperationalError
from django.views.decorators.csrf import csrf_exempt

from objects import access
from objects.errors import ApiError, NotFound
from objects.responses import error, error_response, json_response

from . import queue
from .models import Job

logger = logging.getLogger(__name__)
ALLOWED = "GET, HEAD, DELETE"


class NoSuchJob(NotFound):
    code = "no_such_job"


class JobFinished(ApiError):
    status, code = 409, "job_finished"


def find(job_id, user):
    """The job ``job_id`` if ``user`` (None: anonymous) may see it; NoSuchJob otherwise."""
    try:
        job = Job.objects.filter(id=uuid.UUID(job_id)).first()
    except ValueError:
        job = None
    if job is None or not (job.owner_id == getattr(user, "id", None) or getattr(user, "is_staff", False)):
        raise NoSuchJob(f"No job {job_id!r} that you may see: it does not exist, was forgotten after its "
                        "retention time, or another user started it.")
    return job


@csrf_exempt
def job_view(request, job_id):
    try:
        if request.method not in ("GET", "HEAD", "DELETE"):
            return error(405, "method_not_allowed", f"{request.method} is not supported on a job; use {ALLOWED}.",
                         headers={"Allow": ALLOWED})
        job = find(job_id, access.check(request, write=True))
        if request.method == "DELETE":
            if not queue.cancel(job):
                job.refresh_from_db()
                raise JobFinished(f"The job is already {job.state}; only a queued or running job can be cancelled.")
            job.refresh_from_db()
        return json_response(job.as_dict())
    except ApiError as exc:
        return error_response(exc)
    except (OperationalError, InterfaceError) as exc:
        logger.warning("database error on %s %s: %s", request.method, request.path, exc)
        return error(503, "database_unavailable", "The database is unavailable; retry in a moment.",
                     headers={"Retry-After": "5"})
