"""
Jobs workers started by gunicorn's master (``gunicorn.conf.py``), so that
``make run`` and any gunicorn started with istore's configuration run jobs
with no further command.

``ISTORE_JOBS_WORKERS`` (default 1; 0 when workers run apart, e.g. as their
own systemd units) ``manage.py jobs_worker`` processes are started when the
server is ready, started again if one exits while the server runs, and sent
SIGTERM when it stops (each hands its running job back to the queue). They
die with the master even when it is killed outright (Linux's parent-death
signal), so no orphan keeps running jobs from old code.

This module imports nothing of Django: the master never sets Django up.
"""
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

logger = logging.getLogger("gunicorn.error")
MANAGE = Path(__file__).resolve().parents[1] / "manage.py"
PR_SET_PDEATHSIG = 1


def _die_with_parent():
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the master's on_exit still stops them
        pass


class Supervisor:
    def __init__(self, count):
        self.count = count
        self.processes = []
        self.stopping = threading.Event()

    def start(self):
        for number in range(self.count):
            threading.Thread(target=self._keep, args=(number,), name=f"jobs worker {number}", daemon=True).start()

    def _keep(self, number):
        while not self.stopping.is_set():
            started = time.monotonic()
            process = subprocess.Popen([sys.executable, str(MANAGE), "jobs_worker"], preexec_fn=_die_with_parent)
            self.processes.append(process)
            logger.info("jobs worker %d started (pid %d)", number, process.pid)
            try:
                process.wait()
            except ChildProcessError:  # reaped by gunicorn's SIGCHLD handler: it has exited all the same
                pass
            if self.stopping.is_set():
                return
            logger.warning("jobs worker %d (pid %d) exited; starting another", number, process.pid)
            time.sleep(max(0.0, 2.0 - (time.monotonic() - started)))  # no tight loop if it cannot start

    def stop(self, timeout=30):
        self.stopping.set()
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
            except ChildProcessError:
                pass


def from_environment():
    """A started Supervisor of ISTORE_JOBS_WORKERS workers, or None for 0."""
    count = int(os.environ.get("ISTORE_JOBS_WORKERS", "1") or 0)
    if count <= 0:
        return None
    supervisor = Supervisor(count)
    supervisor.start()
    return supervisor
