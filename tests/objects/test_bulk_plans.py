"""_bulk outside a transaction (as served): on SQLite each write is worked out before the write lock
(objects.writing.write_many), and worked out again when its row changed before the lock was taken."""
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.db import connection

from objects import writing
from objects.models import Item
from tests.conftest import Api, body


def ndjson(*lines):
    return "".join(json.dumps(line) + "\n" for line in lines)


@pytest.fixture
def api(client, transactional_db, settings):
    settings.ISTORE_ALLOW_ANONYMOUS_WRITES = True
    return Api(client)


# Only SQLite, whose writers take turns, plans before the lock; PostgreSQL works out every write on
# its locked row.
plans_first = pytest.mark.skipif(connection.vendor != "sqlite", reason="PostgreSQL does not plan before its locks")


@pytest.fixture
def meanwhile(monkeypatch):
    """``meanwhile(f)``: run ``f`` once, right after the first unlocked read of the rows a batch writes."""
    actions = []
    read = Item.objects.for_write

    def for_write(hashes, lock=True):
        rows = read(hashes, lock)
        while not lock and actions:
            actions.pop()()
        return rows

    monkeypatch.setattr(Item.objects, "for_write", for_write)
    return actions.append


def send(api, *lines):
    return body(api.client.post("/b/_bulk", ndjson(*lines), content_type="application/x-ndjson"))


@plans_first
def test_a_row_written_after_the_plan_is_merged_into(api, meanwhile):
    api.post("/b/k", {"a": 1})
    meanwhile(lambda: writing.write("/b/k", {"other": 2}))
    answer = send(api, {"key": "k", "metadata": {"mine": 3}})
    assert answer["updated"] == 1, answer
    assert body(api.meta("/b/k"))["metadata"] == {"a": 1, "other": 2, "mine": 3}, "no merge may be lost"


@plans_first
def test_a_key_created_after_the_plan_is_updated(api, meanwhile):
    meanwhile(lambda: writing.write("/b/k", {"other": 2}))
    answer = send(api, {"key": "k", "metadata": {"mine": 3}})
    assert (answer["created"], answer["updated"]) == (0, 1), answer
    assert body(api.meta("/b/k"))["metadata"] == {"other": 2, "mine": 3}


@plans_first
def test_a_key_deleted_after_the_plan_is_created_again(api, meanwhile):
    api.post("/b/k", {"a": 1})
    meanwhile(lambda: writing.delete("/b/k"))
    answer = send(api, {"key": "k", "metadata": {"mine": 3}})
    assert (answer["created"], answer["updated"]) == (1, 0), answer
    assert body(api.meta("/b/k"))["metadata"] == {"mine": 3}, "the deleted item's metadata is gone"


@plans_first
def test_a_merge_that_grows_past_the_limit_after_the_plan_fails(api, meanwhile, settings):
    settings.ISTORE_MAX_METADATA_BYTES = 100
    api.post("/b/k", {"a": 1})
    meanwhile(lambda: writing.write("/b/k", {"big": "x" * 60}))
    answer = send(api, {"key": "k", "metadata": {"mine": "y" * 30}})
    assert [e["error"] for e in answer["errors"]] == ["metadata_too_large"], answer
    assert body(api.meta("/b/k"))["metadata"] == {"a": 1, "big": "x" * 60}


def test_concurrent_bulk_merges_into_the_same_keys_lose_no_field(live_server, transactional_db, settings):
    settings.ISTORE_ALLOW_ANONYMOUS_WRITES = True

    def merge(writer):
        for round_ in range(3):
            lines = ndjson(*({"key": f"k{i}", "metadata": {f"w{writer}r{round_}": i}} for i in range(100)))
            response = requests.post(f"{live_server.url}/b/_bulk", data=lines, timeout=120,
                                     headers={"Content-Type": "application/x-ndjson"})
            assert response.status_code == 200 and not response.json()["errors"], response.text

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(merge, range(4)))
    for item in Item.objects.filter(key__startswith="/b/"):
        assert len(item.metadata) == 12, f"{item.key} lost merges: {sorted(item.metadata)}"
    assert Item.objects.filter(key__startswith="/b/").count() == 100
