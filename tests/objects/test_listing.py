"""Listing directories: bytewise order, paging, delimiter (§4)."""
import re
from urllib.parse import unquote

import pytest

from tests.conftest import body

ODD_KEYS = ["/l/a", "/l/a//b", "/l/a/b", "/l/a?b", "/l/~", "/l/é", "/l/z", "/l/日本", "/l/A", "/l/a b"]


def bytewise(keys):
    return sorted(keys, key=lambda k: k.encode("utf-8"))


@pytest.fixture
def odd_keys(api):
    for key in ODD_KEYS:
        assert api.post(key, {"k": key}).status_code == 201, key
    return ODD_KEYS


def test_listing_is_in_bytewise_order(api, odd_keys):
    assert api.keys("/l/") == bytewise(odd_keys), "keys must sort by UTF-8 bytes"


def test_listing_includes_every_depth(api):
    for key in ["/deep/a/b/c/d", "/deep/x", "/deep/a/"]:
        api.post(key)
    assert api.keys("/deep/") == ["/deep/a/", "/deep/a/b/c/d", "/deep/x"]


def test_listing_does_not_leak_siblings(api):
    for key in ["/ab/x", "/a/x", "/a0", "/a"]:
        api.post(key)
    assert api.keys("/a/") == ["/a/x"]


def test_empty_or_unknown_directory_is_empty_list(api):
    assert api.keys("/nothing/here/") == []


def walk_pages(api, directory, limit, extra=""):
    """Follow Link: rel=next from the first page; return every entry key and the page count."""
    seen, pages = [], 0
    query = f"limit={limit}{extra}"
    while True:
        response = api.get(directory, query)
        assert response.status_code == 200
        entries = body(response)
        assert len(entries) <= limit
        seen += [e.get("_filepath", e.get("_prefix")) for e in entries]
        pages += 1
        link = response.get("Link")
        if not link:
            return seen, pages
        match = re.match(r'<([^?]*)\?(.*)>; rel="next"', link)
        assert match and unquote(match.group(1)) == directory, f"bad Link header {link}"
        query = match.group(2)


@pytest.mark.parametrize("limit", [1, 3, 4, 10, 50])
def test_paging_walks_every_item_exactly_once(api, odd_keys, limit):
    seen, pages = walk_pages(api, "/l/", limit)
    assert seen == bytewise(odd_keys), f"limit={limit}: pages must cover each key once, in order"
    assert pages == max(1, -(-len(odd_keys) // limit))


def test_last_page_has_no_link(api, odd_keys):
    assert "Link" not in api.get("/l/", "limit=100")


@pytest.fixture
def tree(api):
    keys = ["/t/", "/t/a", "/t/b/", "/t/b/1", "/t/b/2/3", "/t/c", "/t/d/x", "/t/http://example.com/v.webm",
            "/t/e/http://example.com/w.webm"]
    for key in keys:
        api.post(key)
    return keys


def test_delimiter_folds_deeper_keys(api, tree):
    entries = body(api.get("/t/", "delimiter=/"))
    assert [e.get("_filepath", e.get("_prefix")) for e in entries] == [
        "/t/", "/t/a", "/t/b/", "/t/c", "/t/d/", "/t/e/", "/t/http://example.com/v.webm",
    ]
    assert {"_prefix": "/t/b/"} in entries, "a folded prefix is rendered as {'_prefix': ...}"


def test_delimiter_paging_never_repeats_a_prefix(api, tree):
    everything = [e.get("_filepath", e.get("_prefix")) for e in body(api.get("/t/", "delimiter=/"))]
    for limit in (1, 2, 3):
        seen, _ = walk_pages(api, "/t/", limit, "&delimiter=/")
        assert seen == everything, f"limit={limit}: delimiter pages must match the full listing"


def test_after_naming_a_prefix_skips_its_subtree(api, tree):
    entries = body(api.get("/t/", "delimiter=/&limit=10&after=/t/b/"))
    assert entries[0]["_filepath"] == "/t/c"


@pytest.mark.parametrize("query", ["limit=0", "limit=x", "limit=-1", "delimiter=%7C", "after=relative"])
def test_bad_listing_parameters_are_400(api, query):
    response = api.get("/l/", query)
    assert response.status_code == 400, query
    assert body(response)["error"] == "invalid_listing"


def test_full_listing_streams(api, odd_keys):
    response = api.get("/l/")
    assert response.streaming, "a listing without limit must stream"
    assert response["Content-Type"] == "application/json"


def test_listing_larger_than_a_batch(api, monkeypatch):
    from objects import keyrange

    monkeypatch.setattr(keyrange, "BATCH", 7)
    keys = [f"/big/{i:03d}" for i in range(30)]
    for key in keys:
        api.post(key)
    assert api.keys("/big/") == keys
    assert walk_pages(api, "/big/", 8)[0] == keys


def test_long_keys_sort_past_the_indexed_prefix(api, monkeypatch):
    from objects import keyrange

    monkeypatch.setattr(keyrange, "BATCH", 4)
    stem = "/long/" + "k" * 600
    # Keys that share their first 512 characters, written out of order,
    # between shorter keys: a page or a batch may end inside their run.
    keys = [stem + suffix for suffix in ("m", "b", "a", "z", "c", "/deep", "é", "y", "d", "x")]
    keys += ["/long/a", "/long/" + "k" * 400, "/long/l"]
    for key in keys:
        assert api.post(key).status_code == 201
    for limit in (1, 3, 7):
        assert walk_pages(api, "/long/", limit)[0] == bytewise(keys), f"limit={limit}"
    assert api.keys("/long/") == bytewise(keys), "the streamed listing reads the run in batches of 4"
    folded = bytewise(set(keys) - {stem + "/deep"} | {stem + "/"})
    assert walk_pages(api, "/long/", 2, "&delimiter=/")[0] == folded


def test_directory_longer_than_the_indexed_prefix_lists_only_its_keys(api):
    directory = "/long/" + "d" * 600 + "/"
    inside = [directory + "a", directory + "b/c"]
    neighbours = [directory[:-1], directory[:-1] + "0", directory[:-1] + "e/x", "/long/" + "d" * 601]
    for key in inside + neighbours:
        api.post(key)
    assert api.keys(directory) == inside, "keys sharing the first 512 characters must not leak into the listing"
    assert walk_pages(api, directory, 1, "&delimiter=/")[0] == [directory + "a", directory + "b/"]
