"""
``python manage.py jobs_worker``: run queued jobs in the foreground until
stopped. Any number may run, on any host sharing the database; gunicorn's
configuration starts ``ISTORE_JOBS_WORKERS`` of them beside each host.

It is django-tasks' database worker (``django_tasks_db``'s ``db_worker``
loop) plus the upkeep thread of ``jobs.running``. SIGTERM or SIGINT stops it
gracefully: a running job is handed back to the queue at its next progress
step (another worker starts it again), and the worker exits; a second signal
exits at once.
"""
import logging
import os
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand
from django_tasks_db.management.commands.db_worker import Worker

from jobs import running

logger = logging.getLogger("jobs")


class Command(BaseCommand):
    help = "Run a jobs worker in the foreground: run queued jobs until stopped (SIGTERM or SIGINT)."

    def add_arguments(self, parser):
        parser.add_argument("--batch", action="store_true",
                            help="Run the jobs queued now, then exit (for cron and tests).")

    def handle(self, *args, batch=False, verbosity=1, **options):
        if not batch:
            os.nice(settings.ISTORE_JOBS_NICE)
        if verbosity > 0 and not logging.getLogger("django_tasks_db").hasHandlers():
            handler = logging.StreamHandler(self.stdout)
            for name in ("django_tasks_db", "django_tasks", "jobs"):
                logging.getLogger(name).addHandler(handler)
                logging.getLogger(name).setLevel(logging.INFO)
        worker = Worker(queue_names=["default"], interval=settings.ISTORE_JOBS_POLL, batch=batch,
                        backend_name="default", startup_delay=False, max_tasks=None,
                        worker_id=running.worker_id(), excluded_queue_names=[])
        if batch:
            running.upkeep()
            worker.run()
            return
        stop = threading.Event()
        upkeep = threading.Thread(target=running.maintain, args=(stop,), name="jobs upkeep", daemon=True)
        upkeep.start()

        def shutdown(signum, frame):
            running.STOPPING.set()
            worker.shutdown(signum, frame)

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, shutdown)
        try:
            worker.run()
        finally:
            stop.set()
