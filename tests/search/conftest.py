"""Fixtures for the similarity search tests: an HTTP client with anonymous
writes on, and Django's default storage in a temporary directory."""
import json

import pytest
from django.test import Client

from search import ann, exact, freshness


@pytest.fixture(autouse=True)
def fresh_caches():
    """Per-process caches must not outlive a test: its rolled-back ids are reused."""
    ann.clear_cache()
    exact.clear_cache()
    freshness.clear_cache()
    yield
    ann.clear_cache()
    exact.clear_cache()
    freshness.clear_cache()


@pytest.fixture
def api(settings, tmp_path, db):
    return _client(settings, tmp_path)


@pytest.fixture
def api_tx(settings, tmp_path, transactional_db):
    """As ``api``, but each request commits (the per-process caches are only
    filled outside transactions)."""
    return _client(settings, tmp_path)


def _client(settings, tmp_path):
    settings.ISTORE_ALLOW_ANONYMOUS_WRITES = True
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "storage")},
        },
    }
    return Client()


def post_item(client, key, metadata, method="post"):
    call = getattr(client, method)
    if method == "put":
        response = call(key, json.dumps({"metadata": metadata}), content_type="application/json")
    else:
        response = call(key, {"metadata": json.dumps(metadata)})
    assert response.status_code in (200, 201), response.content
    return response.json()


def verb(client, path, body, content_type="application/json"):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(path, data, content_type=content_type)


def search(client, directory, expect=200, **similar):
    response = verb(client, directory + "_search", {"similar": similar})
    assert response.status_code == expect, response.content
    return response.json()


def create_index(client, directory, by, expect=201):
    response = verb(client, directory + "_create_index", {"similar": {"by": by}})
    assert response.status_code == expect, response.content
    return response.json()


def keys_of(results):
    return [result["_filepath"] for result in results]


CONTRACT_DIR = "/path/vec/"
CONTRACT = {
    "/path/vec/http://example.com/0.jpg": [0.5, 0.8],
    "/path/vec/http://example.com/a.jpg": [1, 0],
    "/path/vec/http://example.com/b.jpg": [0, 1],
    "/path/vec/http://example.com/c.jpg": [-0.1, -0.1],
}
CONTRACT_ORDER = [
    "/path/vec/http://example.com/0.jpg",
    "/path/vec/http://example.com/b.jpg",
    "/path/vec/http://example.com/a.jpg",
    "/path/vec/http://example.com/c.jpg",
]


@pytest.fixture
def contract(api):
    for key, vector in CONTRACT.items():
        post_item(api, key, {"vec": vector, "name": key.rsplit("/", 1)[-1]})
    return api
