"""
A job: one unit of long work (a verb, or a background kind another app
registers) as its user sees it at ``/_jobs/{id}``.

The queue engine (django-tasks' database backend, ``jobs.queue``) only
delivers "run job X" to some worker; everything the API shows lives here,
so a job keeps its id, owner, progress and result across the engine's
retries: a job whose worker died is handed to the engine again as a new
task, the job row stays the same.
"""
import uuid

from django.conf import settings
from django.db import models


class Job(models.Model):
    QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
    STATES = [(state, state) for state in (QUEUED, RUNNING, DONE, FAILED, CANCELLED)]
    UNFINISHED = (QUEUED, RUNNING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=64, help_text="A verb (_create_index) or a registered background kind.")
    params = models.JSONField(default=dict)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                              related_name="+", help_text="Who started it; empty for an anonymous writer.")
    state = models.CharField(max_length=16, choices=STATES, default=QUEUED)
    done = models.BigIntegerField(default=0)
    total = models.BigIntegerField(default=0)
    result = models.JSONField(null=True, blank=True)
    result_status = models.PositiveSmallIntegerField(null=True, blank=True,
                                                     help_text="The HTTP status the verb would have answered.")
    error = models.JSONField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    # While running: the worker that holds the job and when it last said so
    # (jobs.running); a stale heartbeat hands the job to another worker.
    worker = models.CharField(max_length=64, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    task_id = models.CharField(max_length=64, blank=True, help_text="The engine's task that runs it now.")

    class Meta:
        indexes = [models.Index(fields=["state", "heartbeat"]), models.Index(fields=["state", "finished"])]

    def __str__(self):
        return f"{self.kind} {self.id} ({self.state})"

    def as_dict(self):
        """The job as ``GET /_jobs/{id}`` answers it."""
        return {
            "job": str(self.id),
            "state": self.state,
            "progress": {"done": self.done, "total": self.total},
            "result": self.result,
            "error": self.error,
            "kind": self.kind,
            "dir": self.params.get("dir") if isinstance(self.params, dict) else None,
            "created": self.created.isoformat() if self.created else None,
            "started": self.started.isoformat() if self.started else None,
            "finished": self.finished.isoformat() if self.finished else None,
            "attempts": self.attempts,
        }
