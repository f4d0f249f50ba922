"""The database restarting under load (issue 9 §3).

A private PostgreSQL (its own data directory and port, run as the postgres
user) is stopped while clients write through gunicorn: requests fail with a
503 JSON error while it is down (never a 500, never a hang), succeed again
once it is back, and every acknowledged write is there afterwards.
"""
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.servers import free_port, unavailable

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None) if Path("/usr/lib/postgresql").exists() \
    else None


def as_postgres(*command):
    return subprocess.run(["runuser", "-u", "postgres", "--", *map(str, command)], check=True,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def private_postgres(tmp_path_factory):
    if PG_BIN is None or shutil.which("runuser") is None or os.geteuid() != 0:
        unavailable("needs PostgreSQL's server binaries and root (to run them as the postgres user)")
    data = Path("/tmp") / f"istore-pg-{os.getpid()}-{time.monotonic_ns()}"
    data.mkdir()
    shutil.chown(data, "postgres", "postgres")
    port = free_port()
    as_postgres(PG_BIN / "initdb", "-D", data / "db", "-A", "trust", "-U", "postgres")
    control = {"data": data, "port": port}

    def start():
        as_postgres(PG_BIN / "pg_ctl", "-D", data / "db", "-l", data / "log", "-w", "-o",
                    f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start")

    def stop():
        as_postgres(PG_BIN / "pg_ctl", "-D", data / "db", "-m", "fast", "-w", "stop")

    control.update(start=start, stop=stop)
    start()
    try:
        yield control
    finally:
        subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(data / "db"),
                        "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def server(gunicorn, private_postgres, tmp_path):
    base, _, _ = gunicorn({"DATABASE_URL": f"postgres://postgres@127.0.0.1:{private_postgres['port']}/postgres",
                           "ISTORE_DATA_DIR": str(tmp_path), "DATABASE_CONN_MAX_AGE": "60"}, workers=2)
    return base


def test_requests_fail_with_503_while_the_database_is_down(server, private_postgres):
    acknowledged, uncertain, statuses, stop_at = {}, set(), [], time.monotonic() + 12
    lock = threading.Lock()

    def client(index):
        n = 0
        with requests.Session() as session:
            while time.monotonic() < stop_at:
                n += 1
                key = f"/restart/c{index}/{n}"
                try:
                    response = session.post(server + key, data={"metadata": f'{{"n": {n}}}'}, timeout=10)
                except requests.RequestException:
                    uncertain.add(key)  # no answer: it may or may not have been written
                    continue
                with lock:
                    statuses.append(response.status_code)
                    if response.status_code == 201:
                        acknowledged[key] = n
                    else:
                        assert response.headers["Content-Type"] == "application/json", response.text
                time.sleep(0.01)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    private_postgres["stop"]()
    time.sleep(3)
    down = requests.get(server + "/restart/c0/1?meta=1", timeout=10)
    private_postgres["start"]()
    for thread in threads:
        thread.join(30)
    assert down.status_code == 503 and down.json()["error"] == "database_unavailable", down.text
    assert 500 not in statuses, "a database outage must never be a 500"
    assert set(statuses) <= {201, 503}, sorted(set(statuses))
    after = requests.post(server + "/restart/after", data={"metadata": "{}"}, timeout=10)
    assert after.status_code == 201, "writes succeed again once the database is back"
    listed = {item["_filepath"]: item["metadata"]["n"] for item in requests.get(server + "/restart/", timeout=30).json()
              if item["_filepath"] != "/restart/after" and item["_filepath"] not in uncertain}
    assert listed == acknowledged, "every acknowledged write, and nothing else, is stored"
