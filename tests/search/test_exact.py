"""Exact search through HTTP: the contract's example, directory scoping,
dimension mismatches, ties, limits, and agreement with a float64 brute force."""
import math

import numpy as np
import pytest

from objects import writing
from search import exact
from search.vectors import as_unit

from .conftest import CONTRACT, CONTRACT_DIR, CONTRACT_ORDER, keys_of, post_item, search, verb


def angular(u, v):
    u, v = np.asarray(u, float), np.asarray(v, float)
    return 0.5 - 0.5 * float(u @ v) / (np.linalg.norm(u) * np.linalg.norm(v))


def test_contract_example_order_and_distances(contract):
    results = search(contract, CONTRACT_DIR, to="/path/vec/http://example.com/0.jpg", by="vec", limit=10)
    assert keys_of(results) == CONTRACT_ORDER
    query = CONTRACT[CONTRACT_ORDER[0]]
    for result in results:
        assert result["_distance"] == pytest.approx(angular(query, CONTRACT[result["_filepath"]]), abs=1e-6)
        assert result["metadata"]["vec"] == CONTRACT[result["_filepath"]]
        assert {"_id", "_filepath", "metadata"} <= set(result)
    assert results[0]["_distance"] == pytest.approx(0.0, abs=1e-12)
    assert 0.0 <= results[-1]["_distance"] <= 1.0


def test_vector_instead_of_to(contract):
    results = search(contract, CONTRACT_DIR, vector=[0.5, 0.8], by="vec")
    assert keys_of(results) == CONTRACT_ORDER
    # Length does not matter, direction does.
    assert keys_of(search(contract, CONTRACT_DIR, vector=[5, 8], by="vec")) == CONTRACT_ORDER
    assert keys_of(search(contract, CONTRACT_DIR, vector=[-1, -1], by="vec"))[0].endswith("/c.jpg")


def test_limit_and_default_limit(api):
    for i in range(15):
        post_item(api, f"/many/{i:02d}", {"v": [1, i / 10]})
    assert len(search(api, "/many/", vector=[1, 0], by="v")) == 10
    results = search(api, "/many/", vector=[1, 0], by="v", limit=3)
    assert keys_of(results) == ["/many/00", "/many/01", "/many/02"]
    assert len(search(api, "/many/", vector=[1, 0], by="v", limit=1000)) == 15


def test_items_outside_dir_never_returned(api):
    post_item(api, "/d/in", {"v": [1, 0]})
    post_item(api, "/d/deep/er/in", {"v": [1, 0.1]})
    post_item(api, "/d/", {"v": [1, 0.2]})  # the directory's own item is under it
    post_item(api, "/d0/out", {"v": [1, 0]})  # bytewise just past "/d/"
    post_item(api, "/d", {"v": [1, 0]})
    post_item(api, "/c/out", {"v": [1, 0]})
    post_item(api, "/e/http://example.com/d/x", {"v": [1, 0]})
    results = search(api, "/d/", vector=[1, 0], by="v", limit=100)
    assert keys_of(results) == ["/d/in", "/d/deep/er/in", "/d/"]
    everything = search(api, "/", vector=[1, 0], by="v", limit=100)
    assert len(everything) == 7


def test_to_may_live_outside_dir(api):
    post_item(api, "/q/query", {"v": [0, 1]})
    post_item(api, "/d/a", {"v": [1, 0]})
    post_item(api, "/d/b", {"v": [0, 1]})
    assert keys_of(search(api, "/d/", to="/q/query", by="v")) == ["/d/b", "/d/a"]


def test_dimension_mismatches_skipped(api):
    post_item(api, "/m/two", {"v": [1, 0]})
    post_item(api, "/m/three", {"v": [1, 0, 0]})
    post_item(api, "/m/two-b", {"v": [0, 1]})
    assert keys_of(search(api, "/m/", vector=[1, 0], by="v")) == ["/m/two", "/m/two-b"]
    assert keys_of(search(api, "/m/", to="/m/three", by="v")) == ["/m/three"]
    assert search(api, "/m/", vector=[1, 0, 0, 0], by="v") == []


def test_non_vectors_and_other_fields_ignored(api):
    post_item(api, "/n/good", {"v": [1, 0], "w": [0, 1]})
    post_item(api, "/n/strings", {"v": ["1", "0"]})
    post_item(api, "/n/bools", {"v": [True, False]})
    post_item(api, "/n/mixed", {"v": [1, "x"]})
    post_item(api, "/n/nested", {"v": [[1, 0]]})
    post_item(api, "/n/empty", {"v": []})
    post_item(api, "/n/zero", {"v": [0, 0]})
    post_item(api, "/n/object", {"v": {"x": 1}})
    post_item(api, "/n/scalar", {"v": 3})
    post_item(api, "/n/nested-field", {"inner": {"v": [1, 0]}})
    post_item(api, "/n/none", {})
    assert keys_of(search(api, "/n/", vector=[1, 0], by="v", limit=100)) == ["/n/good"]
    assert keys_of(search(api, "/n/", vector=[1, 0], by="w", limit=100)) == ["/n/good"]


def test_ties_broken_by_key_bytewise(api):
    # Same direction, so the same distance: order is bytewise key order.
    for key in ["/t/b", "/t/a", "/t/\u00e9", "/t/Z", "/t/a/b", "/t/\U0001f600", "/t/\uff5e"]:
        post_item(api, key, {"v": [2, 2]})
    results = search(api, "/t/", vector=[1, 1], by="v", limit=100)
    expected = sorted(["/t/b", "/t/a", "/t/\u00e9", "/t/Z", "/t/a/b", "/t/\U0001f600", "/t/\uff5e"],
                      key=lambda k: k.encode("utf-8"))
    assert keys_of(results) == expected
    assert keys_of(search(api, "/t/", vector=[1, 1], by="v", limit=3)) == expected[:3]


def test_updates_and_removals_followed(api):
    post_item(api, "/u/x", {"v": [1, 0]})
    post_item(api, "/u/y", {"v": [0, 1]})
    assert keys_of(search(api, "/u/", vector=[1, 0], by="v"))[0] == "/u/x"
    post_item(api, "/u/x", {"v": [-1, 0]})  # merge: the vector changes
    assert keys_of(search(api, "/u/", vector=[1, 0], by="v")) == ["/u/y", "/u/x"]
    post_item(api, "/u/x", {"v": None})  # merge patch: null removes it
    assert keys_of(search(api, "/u/", vector=[1, 0], by="v")) == ["/u/y"]
    post_item(api, "/u/y", {"other": 1}, method="put")  # replace: no vector left
    assert search(api, "/u/", vector=[1, 0], by="v") == []
    api.delete("/u/y")
    assert search(api, "/u/", vector=[1, 0], by="v") == []


def test_form_content_type_like_curl_d(contract):
    body = '{"similar": {"to": "/path/vec/http://example.com/0.jpg", "by": "vec", "limit": 10}}'
    response = verb(contract, CONTRACT_DIR + "_search", body,
                    content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200, response.content
    assert keys_of(response.json()) == CONTRACT_ORDER


def test_empty_directory_gives_empty_list(api):
    assert search(api, "/nothing/here/", vector=[1, 0], by="v") == []


def test_agrees_with_float64_brute_force(db):
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((600, 16))
    vectors[::50] = vectors[1]  # some exact duplicates, tied by key
    writing.upsert_many([(f"/r/{i:04d}", {"v": vector.tolist()}) for i, vector in enumerate(vectors)])
    for q in range(5):
        query = rng.standard_normal(16)
        got = exact.search("/r/", "v", 16, as_unit(query.tolist())[None], 25)
        want = sorted(range(len(vectors)),
                      key=lambda i: (round(angular(query, vectors[i]), 9), f"/r/{i:04d}"))[:25]
        assert [item.key for item, _ in got] == [f"/r/{i:04d}" for i in want]
        for (item, distance), i in zip(got, want):
            assert math.isclose(distance, angular(query, vectors[i]), abs_tol=1e-6)
    tied = exact.search("/r/", "v", 16, as_unit(vectors[1].tolist())[None], 5)
    assert [item.key for item, _ in tied] == ["/r/0000", "/r/0001", "/r/0050", "/r/0100", "/r/0150"]


def fill(client, directory, count):
    for i in range(count):
        post_item(client, f"{directory}{i:03d}", {"v": [1, i / count]})


def test_cached_snapshot_stays_exact(api_tx):
    fill(api_tx, "/cache/", 60)
    assert keys_of(search(api_tx, "/cache/", vector=[1, 0], by="v", limit=2)) == ["/cache/000", "/cache/001"]
    snapshot = exact.cached_snapshot("/cache/", "v", 2)
    assert snapshot is not None and len(snapshot) == 60
    # Deleted, added, changed and moved away since the snapshot: all seen.
    api_tx.delete("/cache/000")
    post_item(api_tx, "/cache/new", {"v": [1, -0.001]})
    post_item(api_tx, "/cache/001", {"v": [0, 1]})
    post_item(api_tx, "/cache/002", {"v": None})
    post_item(api_tx, "/elsewhere/x", {"v": [1, 0]})
    results = search(api_tx, "/cache/", vector=[1, 0], by="v", limit=3)
    assert keys_of(results) == ["/cache/new", "/cache/003", "/cache/004"]
    assert exact.cached_snapshot("/cache/", "v", 2) is snapshot  # kept, not reloaded
    assert keys_of(search(api_tx, "/cache/", vector=[0, 1], by="v", limit=1)) == ["/cache/001"]
    api_tx.delete("/cache/")
    assert search(api_tx, "/cache/", vector=[1, 0], by="v") == []


def test_snapshot_reloaded_after_many_writes(api_tx, monkeypatch):
    fill(api_tx, "/cache/", 10)
    search(api_tx, "/cache/", vector=[1, 0], by="v")
    first = exact.cached_snapshot("/cache/", "v", 2)
    monkeypatch.setattr(exact, "RELOAD_AFTER", 5)
    fill(api_tx, "/cache/more-", 6)
    assert len(search(api_tx, "/cache/", vector=[1, 0], by="v", limit=100)) == 16
    second = exact.cached_snapshot("/cache/", "v", 2)
    assert second is not first and len(second) == 16 and second.watermark > first.watermark


def test_rows_written_elsewhere_since_the_snapshot_are_walked_once(api_tx, monkeypatch):
    fill(api_tx, "/cache/", 10)
    search(api_tx, "/cache/", vector=[1, 0], by="v")
    fill(api_tx, "/elsewhere/", 30)  # the same field, written after the snapshot, in another directory
    post_item(api_tx, "/cache/new", {"v": [1, -0.001]})
    assert keys_of(search(api_tx, "/cache/", vector=[1, -0.001], by="v", limit=1)) == ["/cache/new"], (
        "a row written under the directory since the snapshot is found")
    walks = []
    rows_under = exact.rows_under
    monkeypatch.setattr(exact, "rows_under", lambda *args, **kwargs: walks.append(kwargs) or rows_under(*args, **kwargs))
    assert keys_of(search(api_tx, "/cache/", vector=[1, -0.001], by="v", limit=1)) == ["/cache/new"], (
        "and found again when the search remembers it")
    assert walks == [], f"a search with nothing written since the last one walked the rows again: {walks}"


def test_snapshot_cache_budget(api_tx, settings):
    settings.ISTORE_SEARCH_CACHE_BYTES = 100
    fill(api_tx, "/cache/", 20)
    assert len(search(api_tx, "/cache/", vector=[1, 0], by="v", limit=100)) == 20
    assert exact.cached_snapshot("/cache/", "v", 2) is None
    settings.ISTORE_SEARCH_CACHE_BYTES = 20 * (2 * 4 + 16)
    search(api_tx, "/cache/", vector=[1, 0], by="v")
    assert exact.cached_snapshot("/cache/", "v", 2) is not None
    fill(api_tx, "/other/", 2)
    search(api_tx, "/other/", vector=[1, 0], by="v")  # evicts the least recently used
    assert exact.cached_snapshot("/cache/", "v", 2) is None
    assert exact.cached_snapshot("/other/", "v", 2) is not None


def test_no_snapshot_inside_a_transaction(api):
    fill(api, "/cache/", 5)
    assert len(search(api, "/cache/", vector=[1, 0], by="v")) == 5
    assert exact.cached_snapshot("/cache/", "v", 2) is None
