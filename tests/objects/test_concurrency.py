"""Concurrent writers through a live server with threads (§3), and concurrent deletes of one tree."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.db import connection

from feed.models import Change
from objects import signals, writing
from objects.models import Item

WRITERS = 20


@pytest.fixture
def server(live_server, settings, transactional_db):
    settings.ISTORE_ALLOW_ANONYMOUS_WRITES = True
    return live_server.url


def test_concurrent_creators_of_one_key(server):
    def create(i):
        return requests.post(f"{server}/race/key", data={"metadata": f'{{"field{i}": {i}}}'}, timeout=60)

    with ThreadPoolExecutor(WRITERS) as pool:
        responses = list(pool.map(create, range(WRITERS)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 1, f"exactly one creator must get 201: {statuses}"
    assert statuses.count(200) == WRITERS - 1, f"the others must get 200: {statuses}"
    assert len({r.json()["_id"] for r in responses}) == 1, "all writers must see the same _id"
    metadata = requests.get(f"{server}/race/key?meta=1", timeout=10).json()["metadata"]
    assert metadata == {f"field{i}": i for i in range(WRITERS)}, "no merge may be lost"


def test_concurrent_writers_to_many_keys(server):
    def create(i):
        return requests.post(f"{server}/many/{i % 5}", data={"metadata": f'{{"w{i}": true}}'}, timeout=60)

    with ThreadPoolExecutor(8) as pool:
        statuses = [r.status_code for r in pool.map(create, range(40))]
    assert all(status in (200, 201) for status in statuses), statuses
    assert statuses.count(201) == 5
    listing = requests.get(f"{server}/many/", timeout=10).json()
    assert sum(len(item["metadata"]) for item in listing) == 40


def test_concurrent_deletes_of_one_directory_record_each_key_once(transactional_db):
    """The second deleter must wait for the first and then find nothing: a follower of the change
    feed sees one delete per item, not one per deleter."""
    for name in ("a", "b", "c"):
        writing.write(f"/gone/{name}", {"n": 1})
    first_read, release = threading.Event(), threading.Event()

    def hold_the_first(sender, **kwargs):
        if threading.current_thread().name == "first":
            first_read.set()
            release.wait(10)

    signals.items_deleting.connect(hold_the_first, sender=Item, dispatch_uid="test.hold_the_first")
    deleted, errors = {}, []

    def delete_tree(name):
        try:
            deleted[name] = writing.delete_tree("/gone/")
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    try:
        first = threading.Thread(target=delete_tree, args=("first",), name="first")
        first.start()
        assert first_read.wait(10), "the first deleter never read its rows"
        second = threading.Thread(target=delete_tree, args=("second",), name="second")
        second.start()
        time.sleep(0.3)  # the second deleter reads the directory now, unless it waits for the first
        release.set()
        first.join(30)
        second.join(30)
    finally:
        signals.items_deleting.disconnect(sender=Item, dispatch_uid="test.hold_the_first")
    assert not errors, f"a deleter failed: {errors}"
    assert deleted == {"first": 3, "second": 0}, f"items deleted by each: {deleted}"
    recorded = sorted(Change.objects.filter(op=Change.DELETE).values_list("key", flat=True))
    assert recorded == ["/gone/a", "/gone/b", "/gone/c"], f"delete changes recorded: {recorded}"
