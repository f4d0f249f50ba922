"""
Two istore "hosts" (two gunicorn instances on two ports, each with its own
data and cache directory) sharing one PostgreSQL, one S3 endpoint (moto's
standalone server over real HTTP) and one Redis.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.servers import ROOT, free_port, manage, unavailable

BIN = Path(sys.executable).parent
PG = dict(host="127.0.0.1", port=5432, user="postgres", dbname="test")
REDIS = ("127.0.0.1", 6379)


def reachable(host, port):
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def wait_http(url, process, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {seconds}s")


def start(command, env, log):
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def shared_services():
    missing = [name for name, (host, port) in {"PostgreSQL": (PG["host"], PG["port"]), "Redis": REDIS}.items()
               if not reachable(host, port)]
    if missing:
        unavailable(f"{', '.join(missing)} not running on 127.0.0.1 (CI always has them)")
    import psycopg

    name = f"istore_two_hosts_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(**PG, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    work = Path(os.environ.get("TMPDIR", "/tmp")) / name
    work.mkdir()
    log = open(work / "services.log", "ab")
    s3_port = free_port()
    moto = start([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)], dict(os.environ), log)
    try:
        wait_http(f"http://127.0.0.1:{s3_port}/", moto)
        import boto3

        bucket = "istore-two-hosts"
        boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3_port}", region_name="us-east-1",
                     aws_access_key_id="test", aws_secret_access_key="test").create_bucket(Bucket=bucket)
        env = {
            **os.environ,
            "DJANGO_DEBUG": "false",
            "SECRET_KEY": "two-hosts-" + uuid.uuid4().hex * 2,
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{name}",
            "ISTORE_STORAGE": "s3",
            "ISTORE_S3_BUCKET": bucket,
            "ISTORE_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
            "ISTORE_S3_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "ISTORE_REDIS_URL": f"redis://{REDIS[0]}:{REDIS[1]}/0",
            "ISTORE_ACCESS_LOG": "/dev/null",
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        yield {"env": env, "work": work, "log": log}
    finally:
        stop(moto)
        log.close()
        with psycopg.connect(**PG, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def two_hosts(shared_services):
    """Two istore hosts and a token valid on both."""
    env, work = shared_services["env"], shared_services["work"]
    setup_env = {**env, "ISTORE_DATA_DIR": str(work / "setup")}
    manage("migrate", "--noinput", "-v0", env=setup_env)
    token = manage("shell", "-c",
                   "from django.contrib.auth.models import User; from rest_framework.authtoken.models import Token;"
                   "u = User.objects.create_user('ops'); print(Token.objects.create(user=u).key)",
                   env=setup_env).stdout.split()[-1]
    hosts, processes = [], []
    try:
        for name in ("a", "b"):
            port = free_port()
            host_env = {**env, "ISTORE_DATA_DIR": str(work / name)}
            process = start([str(BIN / "gunicorn"), "istore_site.wsgi", "-c", "gunicorn.conf.py", "-w", "2",
                             "--bind", f"127.0.0.1:{port}"], host_env, shared_services["log"])
            processes.append(process)
            wait_http(f"http://127.0.0.1:{port}/_health", process)
            hosts.append(f"http://127.0.0.1:{port}")
        yield {"a": hosts[0], "b": hosts[1], "auth": {"Authorization": f"Token {token}"}, "work": work}
    finally:
        for process in processes:
            stop(process)
