"""Fixtures shared by the whole suite: an HTTP client over the namespace, and
istore under a real gunicorn."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from .servers import ROOT, free_port, manage

SAFE = "/:@!$&'()*+,;=~"


def url(key, query=""):
    """The request path for ``key``: percent-encode what a path cannot carry raw."""
    path = quote(key, safe=SAFE)
    return f"{path}?{query}" if query else path


class RawUriClient:
    """Wraps Django's test client to pass the raw request target on, as gunicorn does."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, method):
        call = getattr(self._client, method)

        def request(path, *args, **extra):
            extra.setdefault("RAW_URI", path)
            return call(path, *args, **extra)

        return request


class Api:
    """Django's test client, speaking the way curl does to istore."""

    def __init__(self, client):
        self.client = RawUriClient(client)

    def post(self, key, metadata=None, **extra):
        data = {} if metadata is None else {"metadata": json.dumps(metadata)}
        return self.client.post(url(key), data, **extra)

    def put(self, key, metadata=None, **extra):
        body = "" if metadata is None else "metadata=" + quote(json.dumps(metadata))
        return self.client.put(url(key), body, content_type="application/x-www-form-urlencoded", **extra)

    def upload(self, key, data, content_type=None, method="put", **extra):
        kwargs = {"content_type": content_type} if content_type else {}
        if content_type is None:
            # curl -T sends no Content-Type at all.
            kwargs["content_type"] = ""
        return getattr(self.client, method)(url(key), data, **kwargs, **extra)

    def get(self, key, query="", **extra):
        return self.client.get(url(key, query), **extra)

    def head(self, key, query="", **extra):
        return self.client.head(url(key, query), **extra)

    def delete(self, key, **extra):
        return self.client.delete(url(key), **extra)

    def verb(self, directory, name, body, **extra):
        return self.client.post(url(directory) + name, json.dumps(body),
                                content_type="application/x-www-form-urlencoded", **extra)

    def meta(self, key):
        return self.get(key, "meta=1")

    def keys(self, directory, query=""):
        response = self.get(directory, query)
        assert response.status_code == 200, f"listing {directory} failed: {response.status_code}"
        return [entry.get("_filepath", entry.get("_prefix")) for entry in body(response)]


def body(response):
    """The JSON body of a response, streamed or not."""
    raw = b"".join(response.streaming_content) if response.streaming else response.content
    return json.loads(raw)


@pytest.fixture
def api(client, db, settings):
    """A client with anonymous writes allowed (it talks from 127.0.0.1)."""
    settings.ISTORE_ALLOW_ANONYMOUS_WRITES = True
    return Api(client)


@pytest.fixture
def secured_api(client, db, settings):
    """A client against istore with anonymous writes off (the default)."""
    settings.ISTORE_ALLOW_ANONYMOUS_WRITES = False
    return Api(client)


@pytest.fixture(autouse=True)
def _isolated_storage(settings, tmp_path):
    """Each test gets its own content and cache directories."""
    settings.ISTORE_CACHE_DIR = tmp_path / "cache"
    if settings.STORAGES["default"]["BACKEND"].endswith("FileSystemStorage"):
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {**settings.STORAGES["default"], "OPTIONS": {"location": str(tmp_path / "content")}},
        }


@pytest.fixture
def server_database(tmp_path):
    """A ``DATABASE_URL`` for servers a test starts: a throwaway PostgreSQL
    database when the suite runs on PostgreSQL, else a SQLite file of the test's own."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        yield f"sqlite:///{tmp_path / 'server.sqlite3'}"
        return
    import uuid

    import psycopg

    name = f"istore_server_{uuid.uuid4().hex[:10]}"
    admin = dict(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    with psycopg.connect(**admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(**admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_gunicorn(env, workers, tmp_path=None):
    """Start istore under gunicorn with ``env`` over the test's environment; ``(base URL, master
    process, its environment)``. Stop it with ``stop_gunicorn``."""
    env = {**os.environ, "DJANGO_DEBUG": "false", "SECRET_KEY": "faults-" + "x" * 44,
           "ISTORE_ALLOW_ANONYMOUS_WRITES": "true", "ISTORE_ACCESS_LOG": "/dev/null",
           "ISTORE_JOBS_WORKERS": "0", **env}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    manage("migrate", "-v0", env=env)
    port = free_port()
    process = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "istore_site.wsgi", "-c",
                                "gunicorn.conf.py", "-w", str(workers), "--bind", f"127.0.0.1:{port}"],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            requests.get(f"{base}/_health", timeout=1)
            break
        except requests.RequestException:
            time.sleep(0.1)
    return base, process, env


def stop_gunicorn(process):
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


@pytest.fixture
def gunicorn():
    """``start(env, workers) -> (base URL, master process, env)``; every server started is stopped."""
    started = []

    def start(env, workers):
        base, process, env = run_gunicorn(env, workers)
        started.append(process)
        return base, process, env

    yield start
    for process in started:
        stop_gunicorn(process)
