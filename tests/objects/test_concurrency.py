"""Concurrent writers through a live server with threads (§3)."""
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

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
