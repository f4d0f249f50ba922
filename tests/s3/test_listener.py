"""The S3 listener: its own address on the same gunicorn, chosen by the socket, not by the Host header."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.servers import ROOT, free_port, manage


def test_s3_port_answers_s3_and_the_main_port_the_native_api(s3_server):
    s3_answer = requests.get(s3_server.endpoint + "/", timeout=30)
    assert s3_answer.status_code == 200 and b"ListAllMyBucketsResult" in s3_answer.content, s3_answer.content
    native = requests.get(s3_server.base + "/", timeout=30)
    assert native.headers["Content-Type"] == "application/json", "the main port no longer answers JSON"


def test_host_header_does_not_choose_the_listener(s3_server):
    s3_host = s3_server.endpoint.split("//", 1)[1]
    native = requests.get(s3_server.base + "/", headers={"Host": s3_host}, timeout=30)
    assert native.headers["Content-Type"] == "application/json", "a Host header switched the main port to S3"


def test_admin_and_probes_are_not_on_the_s3_port(s3_server):
    answer = requests.get(s3_server.endpoint + "/_admin/", timeout=30)
    assert b"<Error>" in answer.content, "the S3 port served something else than S3"


@pytest.mark.parametrize("worker_class", ["sync", "gthread"])
def test_listener_works_with_each_worker_class_and_survives_a_reload(tmp_path, worker_class):
    env = {**os.environ, "DJANGO_DEBUG": "false", "SECRET_KEY": "listener-" + "x" * 44, "DATABASE_URL": "",
           "ISTORE_DATA_DIR": str(tmp_path), "ISTORE_ACCESS_LOG": "/dev/null"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    manage("migrate", "-v0", env=env)
    port, s3_port = free_port(), free_port()
    env["ISTORE_S3_BIND"] = f"127.0.0.1:{s3_port}"
    process = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "istore_site.wsgi", "-c",
                                "gunicorn.conf.py", "-w", "1", "-k", worker_class, "--threads", "2",
                                "--bind", f"127.0.0.1:{port}"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert b"ListAllMyBucketsResult" in _get(f"http://127.0.0.1:{s3_port}/", process), "no S3 listener"
        os.kill(process.pid, signal.SIGHUP)
        time.sleep(1)
        assert b"ListAllMyBucketsResult" in _get(f"http://127.0.0.1:{s3_port}/", process), "lost after SIGHUP"
        assert _get(f"http://127.0.0.1:{port}/_health", process).startswith(b"{"), "main port lost after SIGHUP"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def _get(url, process, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "gunicorn exited"
        try:
            return requests.get(url, timeout=5).content
        except requests.RequestException:
            time.sleep(0.2)
    pytest.fail(f"{url} did not answer")
