"""Jobs run by real workers beside a real gunicorn: progress that moves, cancels that stop a
running job, and jobs that survive their worker (SIGTERM, SIGKILL) and a restart of everything."""
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
import requests

from tests.conftest import run_gunicorn
from tests.servers import ROOT

pytestmark = pytest.mark.slow

COUNT, DIM = 30000, 64
FAST = {"ISTORE_JOBS_HEARTBEAT": "0.1", "ISTORE_JOBS_LEASE": "2", "ISTORE_JOBS_POLL": "0.1"}
INDEX = {"similar": {"by": "emb"}}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """The environment of one store (its own SQLite, or a throwaway PostgreSQL database when the
    suite runs on PostgreSQL) holding COUNT vectors under /big/."""
    data = tmp_path_factory.mktemp("jobs-store")
    env = {"ISTORE_DATA_DIR": str(data), "DATABASE_URL": "", **FAST}
    database_url = os.environ.get("DATABASE_URL", "")
    created = None
    if database_url.startswith("postgres"):
        import psycopg

        created = f"istore_jobs_{uuid.uuid4().hex[:8]}"
        server = database_url.rsplit("/", 1)[0]
        with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{created}"')
        env["DATABASE_URL"] = f"{server}/{created}"
    base, master, env = run_gunicorn({**env, "ISTORE_JOBS_WORKERS": "0"}, workers=1)
    os.killpg(master.pid, signal.SIGTERM)
    master.wait(timeout=30)
    fill = ("import numpy as np; from objects import writing; rng = np.random.default_rng(7); "
            f"v = rng.standard_normal(({COUNT}, {DIM})).round(4); "
            f"[writing.upsert_many([(f'/big/{{i:06d}}', {{'emb': v[i].tolist()}}) for i in range(s, min(s + 5000, {COUNT}))]) "
            f"for s in range(0, {COUNT}, 5000)]")
    subprocess.run([sys.executable, "manage.py", "shell", "-c", fill], cwd=ROOT, env=env, check=True, timeout=600)
    yield env
    if created:
        import psycopg

        with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
            connection.execute(f'DROP DATABASE "{created}" WITH (FORCE)')


class Host:
    """gunicorn (with ``jobs_workers`` workers of its own) and the workers a test starts and kills."""

    def __init__(self, env, jobs_workers=0):
        self.env = {**env, "ISTORE_JOBS_WORKERS": str(jobs_workers)}
        self.base, self.master, self.env = run_gunicorn(self.env, workers=1)
        self.workers = []

    def start_worker(self):
        process = subprocess.Popen([sys.executable, "manage.py", "jobs_worker"], cwd=ROOT, env=self.env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.workers.append(process)
        return process

    def start_job(self, directory="/big/", verb="_create_index", body=INDEX, prefer="respond-async"):
        response = requests.post(f"{self.base}{directory}{verb}", data=json.dumps(body),
                                 headers={"Prefer": prefer}, timeout=60)
        assert response.status_code == 202, f"{response.status_code} {response.text[:300]}"
        return response.json()["job"]

    def job(self, job_id):
        response = requests.get(f"{self.base}/_jobs/{job_id}", timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def wait_for(self, job_id, condition, seconds=120):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            data = self.job(job_id)
            if condition(data):
                return data
            time.sleep(0.05)
        pytest.fail(f"job {job_id} never got there: {data}")

    def kill(self):
        for process in [*self.workers, self.master]:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


@pytest.fixture
def hosts(store):
    started = []

    def start(jobs_workers=0):
        host = Host(store, jobs_workers)
        started.append(host)
        return host

    yield start
    for host in started:
        host.kill()


def running_with_progress(data):
    return data["state"] == "running" and data["progress"]["done"] > 0


def finished(data):
    return data["state"] in ("done", "failed", "cancelled")


def test_gunicorn_runs_jobs_with_no_further_command(hosts, store):
    host = hosts(jobs_workers=1)
    job = host.start_job("/big/", "_create_index", INDEX)
    data = host.wait_for(job, finished)
    assert data["state"] == "done" and data["result"]["indexed"] == COUNT, data


def test_respond_async_with_wait_answers_the_result_when_done_in_time(hosts):
    host = hosts(jobs_workers=1)
    requests.post(f"{host.base}/small/a", data={"metadata": json.dumps({"emb": [1, 0]})}, timeout=10)
    response = requests.post(f"{host.base}/small/_create_index", data=json.dumps(INDEX),
                             headers={"Prefer": "respond-async, wait=30"}, timeout=60)
    assert response.status_code == 201 and response.json()["indexed"] == 1, response.text
    assert response.headers["Content-Location"].startswith("/_jobs/")


def test_progress_moves_while_a_job_runs(hosts):
    host = hosts()
    host.start_worker()
    job = host.start_job()
    seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        data = host.job(job)
        if data["state"] == "running":
            seen.append(data["progress"]["done"])
        if finished(data):
            break
        time.sleep(0.05)
    assert data["state"] == "done", data
    steps = sorted(set(seen))
    assert len(steps) >= 3, f"progress must move while the job runs; seen {steps}"
    assert seen == sorted(seen), f"progress never goes back: {seen}"
    assert data["progress"]["total"] == 2 * COUNT and data["progress"]["done"] == data["progress"]["total"]


def test_a_running_job_cancelled_stops_and_the_worker_goes_on(hosts):
    host = hosts()
    host.start_worker()
    job = host.start_job()
    host.wait_for(job, running_with_progress)
    response = requests.delete(f"{host.base}/_jobs/{job}", timeout=10)
    assert response.status_code == 200 and response.json()["state"] == "cancelled", response.text
    requests.post(f"{host.base}/next/a", data={"metadata": json.dumps({"emb": [1, 0]})}, timeout=10)
    following = host.start_job("/next/")
    assert host.wait_for(following, finished)["state"] == "done", "the worker left the cancelled job and went on"
    data = host.job(job)
    assert data["state"] == "cancelled" and data["result"] is None, f"a cancelled job records no result: {data}"


def test_a_worker_stopped_with_sigterm_hands_its_job_back(hosts):
    host = hosts()
    first = host.start_worker()
    job = host.start_job()
    host.wait_for(job, running_with_progress)
    os.killpg(first.pid, signal.SIGTERM)
    assert first.wait(timeout=30) == 0, "the worker stops at the job's next step"
    data = host.job(job)
    assert data["state"] == "queued", f"the job is back in the queue at once, not after a lease: {data}"
    host.start_worker()
    data = host.wait_for(job, finished)
    assert data["state"] == "done" and data["result"]["indexed"] == COUNT, data
    assert data["attempts"] == 1, "a graceful stop is not an attempt"


def test_jobs_survive_every_process_killed_mid_job(hosts):
    host = hosts()
    worker = host.start_worker()
    running = host.start_job()
    queued = host.start_job()  # waits behind the first
    host.wait_for(running, running_with_progress)
    host.kill()  # SIGKILL: the worker mid-job, and gunicorn
    assert worker.returncode == -signal.SIGKILL

    restarted = hosts(jobs_workers=1)  # a fresh host, its worker started by gunicorn
    for job in (running, queued):
        data = restarted.wait_for(job, finished)
        assert data["state"] == "done", f"job {job} must finish after the restart: {data}"
        assert data["result"]["indexed"] == COUNT, "the result is that of a whole build"
    assert restarted.job(running)["attempts"] == 2, "the killed run was taken over once"
    search = requests.post(f"{restarted.base}/big/_search", timeout=30, data=json.dumps(
        {"similar": {"to": "/big/000123", "by": "emb", "limit": 3}}))
    assert search.status_code == 200 and search.json()[0]["_filepath"] == "/big/000123", search.text[:300]
