"""
Verbs as jobs.

A verb registered with a plan (``objects.verbs.verb(name, plan=...)``) runs
as a job, answering 202 with ``Location: /_jobs/{id}`` and ``{"job": id,
"state": "queued"}`` at once:

- when the request says ``Prefer: respond-async`` (RFC 7240); with ``wait=N``
  too, the request waits up to N seconds and answers the verb's own result if
  the job finished by then;
- without the header, when the plan estimates that the verb would run longer
  than ``ISTORE_JOBS_SYNC_SECONDS`` (default 30, a quarter of gunicorn's
  worker timeout): a request that would be cut off by the worker's supervisor
  becomes a job instead. Each plan turns the size of the work (vectors to
  index, frames to write, items to compare) into seconds with a rate measured
  on a small machine (the figures are in benchmarks/README.md).

Otherwise the verb runs in the request, exactly as before. The body is
checked (and the plan's 4xx answered) before any job is made, so a job never
fails for a bad request.
"""
from functools import partial

from django.conf import settings

from objects import verbs
from objects.responses import json_response

from . import prefer, queue


def register_job_verbs():
    """Make every verb with a plan a job kind of its own name, answered by ``respond``."""
    for name in verbs.PLANS:
        queue.register(name)(partial(_run_verb, name))
    verbs.planned_responder = respond


def _run_verb(name, params, progress):
    return verbs.VERBS[name](params["body"], params["dir"], progress=progress)


def job_location(job):
    return f"/_jobs/{job.id}"


def accepted(job, applied):
    """The 202 that hands the client a job."""
    headers = {"Location": job_location(job)}
    if applied:
        headers["Preference-Applied"] = "respond-async"
    return json_response({"job": str(job.id), "state": job.state}, status=202, headers=headers)


def respond(request, name, body, directory, owner):
    """Run the verb ``name`` in the request, or as a job (the rules above); the response."""
    preferences = prefer.parse(request.META.get("HTTP_PREFER", ""))
    plan = verbs.PLANS[name]
    if preferences.respond_async or not getattr(plan, "only_when_asked", False):
        seconds = plan(body, directory)
    else:
        seconds = 0
    if not preferences.respond_async and seconds <= settings.ISTORE_JOBS_SYNC_SECONDS:
        status, data = verbs.VERBS[name](body, directory)
        return json_response(data, status=status)
    job = queue.enqueue(name, {"dir": directory, "body": body}, owner=owner)
    if preferences.respond_async and preferences.wait:
        job = queue.wait(job, preferences.wait)
        if job.state == job.DONE:
            return json_response(job.result, status=job.result_status or 200,
                                 headers={"Content-Location": job_location(job)})
    return accepted(job, applied=preferences.respond_async)
