"""
The worker side of jobs: the engine's task that runs one job, the heartbeat
that reports progress and notices cancels, and the upkeep that hands the jobs
of dead workers to live ones.

Why a heartbeat of our own: django-tasks' database backend marks a task
RUNNING when a worker claims it and never looks at it again, so a worker
killed mid-task (SIGKILL, OOM, a host lost) would leave it running forever.
Each running job therefore carries its worker's id and a heartbeat that a
thread of that worker renews every ``ISTORE_JOBS_HEARTBEAT`` seconds, with
the progress; the same conditional UPDATE tells the worker when the job was
cancelled (it no longer matches). Every worker's upkeep (``maintain``) puts a
running job whose heartbeat is older than ``ISTORE_JOBS_LEASE`` back in the
queue as a new engine task, in one transaction that only one worker can win
(the UPDATE is conditional on the stale heartbeat). The job then runs again
from the start, on whichever worker takes it; its result is recorded only by
the run that holds it (worker and attempt), so it is recorded once. After
``ISTORE_JOBS_MAX_ATTEMPTS`` such losses the job fails with ``worker_lost``
rather than kill workers forever.

The heartbeat thread writes through its own database connection: progress is
reported from inside the job's transactions (``_expand`` writes its frames in
one), which must not hold it back, and a cancel must be seen meanwhile.
"""
import logging
import os
import socket
import threading
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django_tasks import task

from objects import jsontext
from objects.errors import ApiError

from . import queue
from .models import Job

logger = logging.getLogger(__name__)

# Set when this process's worker is asked to stop: running jobs are handed back at their next step.
STOPPING = threading.Event()
_worker_id = None


def worker_id():
    """This process's name as a job holder: host, pid and a random part (pids are reused)."""
    global _worker_id
    if _worker_id is None or not _worker_id.startswith(f"{socket.gethostname()}:{os.getpid()}:"):
        _worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:64]
    return _worker_id


@task()
def run_job(job_id):
    """The engine's task: run the job ``job_id`` if it is still queued."""
    return execute(job_id)


def hand_to_engine(job_id):
    """Queue a new engine task that runs ``job_id`` (in the caller's transaction)."""
    result = run_job.enqueue(str(job_id))
    Job.objects.filter(id=job_id).update(task_id=result.id)


def execute(job_id):
    """Claim the job if it is queued, run its kind's function, record the outcome; the final state."""
    holder = worker_id()
    claimed = Job.objects.filter(id=job_id, state=Job.QUEUED).update(
        state=Job.RUNNING, started=timezone.now(), heartbeat=timezone.now(), worker=holder,
        attempts=F("attempts") + 1)
    if not claimed:
        return "skipped"  # cancelled, or run by another task already
    job = Job.objects.get(id=job_id)
    function = queue.KINDS.get(job.kind)
    if function is None:
        return _finish(job, Job.FAILED, error={"error": "unknown_job_kind",
                                               "detail": f"No worker here knows the job kind {job.kind!r}."})
    heartbeat = Heartbeat(job)
    heartbeat.start()
    try:
        status, result = function(job.params, heartbeat.progress)
        jsontext.check(result, "The job's result")  # what the database cannot store fails the job, not its worker
        jsontext.dumps(result)
    except queue.Interrupted:
        return _requeue(job)
    except queue.Cancelled:
        return Job.CANCELLED
    except ApiError as exc:
        return _finish(job, Job.FAILED, error=exc.as_dict())
    except Exception as exc:  # noqa: BLE001 - recorded on the job, and logged in full
        logger.exception("job %s (%s) failed", job.id, job.kind)
        return _finish(job, Job.FAILED, error={"error": "job_failed",
                                               "detail": f"The job failed: {exc.__class__.__name__}: {exc}"})
    finally:
        heartbeat.stop()
    return _finish(job, Job.DONE, result=result, status=status, done=heartbeat.total or heartbeat.done)


def _held(job):
    """The job's row while this run still holds it."""
    return Job.objects.filter(id=job.id, state=Job.RUNNING, worker=job.worker, attempts=job.attempts)


def _finish(job, state, result=None, status=None, error=None, done=None):
    fields = dict(state=state, result=result, result_status=status, error=error, finished=timezone.now(),
                  heartbeat=None)
    if done is not None:
        fields.update(done=done, total=done)
    return state if _held(job).update(**fields) else Job.CANCELLED


def _requeue(job):
    with transaction.atomic():
        # A graceful stop does not count as an attempt.
        if _held(job).update(state=Job.QUEUED, worker="", heartbeat=None, attempts=F("attempts") - 1):
            hand_to_engine(job.id)
    return Job.QUEUED


class Heartbeat:
    """A running job's progress, written with its heartbeat by a thread of its own."""

    def __init__(self, job):
        self.job = job
        self.done = self.total = 0
        self.lost = False  # cancelled, or taken over by another worker
        self._changed = True
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat {job.id}", daemon=True)

    def progress(self, done, total):
        """The job's progress callback: record it; raise Stop when the job must end here."""
        self.done, self.total, self._changed = int(done), int(total), True
        if self.lost:
            raise queue.Cancelled()
        if STOPPING.is_set():
            raise queue.Interrupted()

    def start(self):
        self._thread.start()

    def stop(self):
        self._stopped.set()
        self._thread.join()

    def _run(self):
        try:
            while not self._stopped.wait(settings.ISTORE_JOBS_HEARTBEAT):
                self.beat()
        finally:
            connection.close()

    def beat(self):
        changed = self._changed
        self._changed = False
        fields = {"heartbeat": timezone.now()}
        if changed:
            fields.update(done=self.done, total=self.total)
        try:
            if not _held(self.job).update(**fields):
                self.lost = True
        except DatabaseError:
            # The database is busy or restarting: try again at the next beat.
            self._changed = self._changed or changed
            logger.warning("job %s: heartbeat not written", self.job.id, exc_info=True)


# --- Upkeep, run by every worker ------------------------------------------------


def reclaim_stale():
    """Hand every job whose worker stopped beating to the queue again (or fail it past the attempts); how many."""
    from django_tasks_db.models import DBTaskResult

    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.ISTORE_JOBS_LEASE)
    count = 0
    for job in Job.objects.filter(state=Job.RUNNING, heartbeat__lt=cutoff)[:100]:
        with transaction.atomic():
            stale = Job.objects.filter(id=job.id, state=Job.RUNNING, worker=job.worker, heartbeat__lt=cutoff)
            if job.attempts >= settings.ISTORE_JOBS_MAX_ATTEMPTS:
                taken = stale.update(state=Job.FAILED, finished=now, heartbeat=None, error={
                    "error": "worker_lost",
                    "detail": f"The worker running this job stopped answering {job.attempts} times; "
                              "the job is not tried again."})
            else:
                taken = stale.update(state=Job.QUEUED, worker="", heartbeat=None)
                if taken:
                    hand_to_engine(job.id)
            if taken and job.task_id:
                DBTaskResult.objects.filter(id=job.task_id, status="RUNNING").update(status="FAILED", finished_at=now)
            count += taken
    count += _requeue_orphans(cutoff)
    return count


def _requeue_orphans(cutoff):
    """Queued jobs whose engine task will never run them (its worker died between the two claims)."""
    from django_tasks_db.models import DBTaskResult

    count = 0
    for job in Job.objects.filter(state=Job.QUEUED, created__lt=cutoff)[:100]:
        task = DBTaskResult.objects.filter(id=job.task_id).values("status", "started_at").first()
        if task and (task["status"] == "READY" or (task["status"] == "RUNNING" and task["started_at"] > cutoff)):
            continue
        with transaction.atomic():
            if Job.objects.filter(id=job.id, state=Job.QUEUED, task_id=job.task_id).exists():
                hand_to_engine(job.id)
                count += 1
    return count


def prune():
    """Forget finished jobs (and the engine's finished tasks) older than ISTORE_JOBS_RETENTION."""
    from django_tasks_db.models import DBTaskResult

    cutoff = timezone.now() - timedelta(seconds=settings.ISTORE_JOBS_RETENTION)
    Job.objects.filter(state__in=[Job.DONE, Job.FAILED, Job.CANCELLED], finished__lt=cutoff).delete()
    DBTaskResult.objects.filter(status__in=["SUCCESSFUL", "FAILED"], finished_at__lt=cutoff).delete()


def upkeep():
    """Reclaim the jobs of stopped workers, and forget old finished jobs."""
    reclaimed = reclaim_stale()
    if reclaimed:
        logger.warning("handed %d job(s) of stopped workers to the queue again", reclaimed)
    prune()


def maintain(stop):
    """The worker's upkeep thread: ``upkeep`` every third of a lease until ``stop`` is set."""
    try:
        while True:
            try:
                upkeep()
            except DatabaseError:
                logger.warning("jobs upkeep failed; trying again", exc_info=True)
            if stop.wait(max(settings.ISTORE_JOBS_LEASE / 3, 0.2)):
                return
    finally:
        connection.close()
