"""
istore under a real gunicorn with the S3 listener (``ISTORE_S3_BIND``) on a
free port, on the database the suite runs on (its own SQLite file, or a
throwaway PostgreSQL database when ``DATABASE_URL`` is set), with a user who
has S3 credentials and an API token. One server serves the whole session;
each test works in a bucket of its own.
"""
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from tests.servers import ROOT, free_port, manage

ACCESS_KEY = "ISTORETESTKEY0000001"
SECRET_KEY = "istore-test-secret-0123456789abcdefghij"
REGION = "us-east-1"


@dataclass
class Server:
    base: str  # the native API
    endpoint: str  # the S3 listener
    token: str
    env: dict
    data_dir: Path
    master: subprocess.Popen

    def client(self, **config):
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name=REGION,
                            config=Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                                          retries={"max_attempts": 1}, **config))

    def native(self, method, key, **kwargs):
        headers = {"Authorization": f"Token {self.token}", **kwargs.pop("headers", {})}
        return requests.request(method, self.base + key, headers=headers, timeout=60, **kwargs)

    def blobs(self, folder="content"):
        """The blob files in the server's local content storage."""
        root = self.data_dir / "content" / folder
        return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


def _database(env):
    """A throwaway PostgreSQL database when the suite runs on PostgreSQL, else the server's own SQLite."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        return "", None
    import psycopg

    name = f"istore_s3_{uuid.uuid4().hex[:10]}"
    admin = dict(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    with psycopg.connect(**admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')

    def drop():
        with psycopg.connect(**admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return url.rsplit("/", 1)[0] + "/" + name, drop


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("s3-server")
    database_url, drop = _database(os.environ)
    port, s3_port = free_port(), free_port()
    env = {**os.environ, "DJANGO_DEBUG": "false", "SECRET_KEY": "s3-tests-" + "x" * 44,
           "ISTORE_DATA_DIR": str(data_dir), "DATABASE_URL": database_url, "ISTORE_ACCESS_LOG": "/dev/null",
           "ISTORE_S3_BIND": f"127.0.0.1:{s3_port}", "ISTORE_ALLOW_ANONYMOUS_WRITES": "false",
           "ISTORE_FEATURES": "true"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    master = None
    try:
        manage("migrate", "-v0", env=env)
        # One manage.py run: each costs seconds of start-up. create_s3_key has tests of its own.
        token = manage("shell", "-c", "from django.contrib.auth.models import User; "
                       "from rest_framework.authtoken.models import Token; from s3.models import Credential; "
                       "u = User.objects.create_user('alice'); "
                       f"Credential.objects.create(user=u, access_key='{ACCESS_KEY}', secret_key='{SECRET_KEY}'); "
                       "print(Token.objects.create(user=u).key)", env=env).stdout.split()[-1]
        log = open(data_dir / "gunicorn.log", "ab")
        master = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "istore_site.wsgi", "-c",
                                   "gunicorn.conf.py", "-w", "2", "--bind", f"127.0.0.1:{port}"], cwd=ROOT, env=env,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        server = Server(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{s3_port}", token, env, data_dir, master)
        _wait(server.endpoint + "/", master)
        yield server
    finally:
        if master is not None:
            os.killpg(master.pid, signal.SIGTERM)
            master.wait(timeout=30)
        if drop:
            drop()


def _wait(url, process, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}")
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {seconds}s")


@pytest.fixture
def s3(s3_server):
    return s3_server.client()


@pytest.fixture
def bucket(s3):
    """A new bucket for one test."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


class _FixedPayload(S3SigV4Auth):
    def __init__(self, credentials, payload_hash):
        super().__init__(credentials, "s3", REGION)
        self.payload_hash = payload_hash

    def payload(self, request):
        return self.payload_hash if self.payload_hash is not None else super().payload(request)


def signed_request(server, method, path, body=b"", headers=None, *, secret=SECRET_KEY, payload_hash=None,
                   access_key=ACCESS_KEY):
    """Send a SigV4-signed request (botocore's signer) as built here: bodies and headers an SDK would not send."""
    url = server.endpoint + path
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    _FixedPayload(Credentials(access_key, secret), payload_hash).add_auth(request)
    return requests.request(method, url, data=body, headers=dict(request.headers.items()), timeout=60)


def error_code(response):
    import xml.etree.ElementTree as ET

    return ET.fromstring(response.content).findtext("Code")
