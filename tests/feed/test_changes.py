"""GET {dir}/_changes: what a follower reads, the parameters, and retention."""
import json

import pytest
from django.core.management import call_command

from feed.models import Change, Sequencer
from tests.conftest import body, url


def changes(api, directory, query=""):
    response = api.client.get(url(directory) + "_changes" + (f"?{query}" if query else ""))
    assert response.status_code == 200, response.content
    return body(response)


def seen(answer):
    return [(change["op"], change["key"]) for change in answer["changes"]]


def test_writes_appear_in_order_with_their_ids(api):
    created = body(api.post("/f/a", {"n": 1}))
    api.post("/f/a", {"n": 2})
    api.delete("/f/a")
    answer = changes(api, "/f/", "since=0")
    assert seen(answer) == [("create", "/f/a"), ("update", "/f/a"), ("delete", "/f/a")], answer
    assert {change["_id"] for change in answer["changes"]} == {created["_id"]}
    seqs = [change["seq"] for change in answer["changes"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3, f"seq increases: {seqs}"
    assert answer["last_seq"] == seqs[-1]


def test_following_last_seq_gives_each_change_once(api):
    api.post("/f/a", {})
    first = changes(api, "/f/", "since=0")
    api.post("/f/b", {})
    second = changes(api, "/f/", f"since={first['last_seq']}")
    assert seen(second) == [("create", "/f/b")], "only the change after last_seq"
    assert changes(api, "/f/", f"since={second['last_seq']}")["changes"] == []


def test_only_changes_under_the_directory(api):
    api.post("/f/in/a", {})
    api.post("/other/b", {})
    api.post("/f/in/", {})
    answer = changes(api, "/f/in/", "since=0")
    assert seen(answer) == [("create", "/f/in/a"), ("create", "/f/in/")], answer
    assert answer["last_seq"] == Sequencer.objects.get().last_seq, "last_seq moves past other directories' changes"


def test_limit_cuts_the_page_and_last_seq_resumes_it(api):
    for name in "abcde":
        api.post(f"/f/{name}", {})
    page = changes(api, "/f/", "since=0&limit=2")
    assert seen(page) == [("create", "/f/a"), ("create", "/f/b")]
    rest = changes(api, "/f/", f"since={page['last_seq']}&limit=10")
    assert [key for _, key in seen(rest)] == ["/f/c", "/f/d", "/f/e"]


def test_since_now_starts_from_the_present(api):
    api.post("/f/old", {})
    now = changes(api, "/f/", "since=now")
    assert now["changes"] == [], "since=now returns nothing that happened before"
    api.post("/f/new", {})
    assert seen(changes(api, "/f/", f"since={now['last_seq']}")) == [("create", "/f/new")]


def test_directory_delete_records_each_key(api):
    for name in ("a", "b", "sub/c"):
        api.post(f"/f/{name}", {})
    since = changes(api, "/", "since=now")["last_seq"]
    api.delete("/f/")
    answer = changes(api, "/f/", f"since={since}")
    assert sorted(seen(answer)) == [("delete", "/f/a"), ("delete", "/f/b"), ("delete", "/f/sub/c")], answer


def test_uploads_appear(api):
    api.upload("/f/blob.bin", b"abc", content_type="application/octet-stream")
    api.upload("/f/blob.bin", b"abcd", content_type="application/octet-stream")
    assert seen(changes(api, "/f/")) == [("create", "/f/blob.bin"), ("update", "/f/blob.bin")]


def test_bulk_lines_appear(api):
    api.post("/f/b", {})
    since = changes(api, "/", "since=now")["last_seq"]
    text = "".join(json.dumps(line) + "\n" for line in (
        {"key": "a", "metadata": {}}, {"key": "b", "metadata": {"x": 1}}, {"key": "b", "delete": True}))
    api.client.post("/f/_bulk", text, content_type="application/x-ndjson")
    assert seen(changes(api, "/f/", f"since={since}")) == [("create", "/f/a"), ("update", "/f/b"),
                                                           ("delete", "/f/b")]


def test_admin_edits_appear(api, admin_client):
    api.post("/f/edited", {"a": 1})
    since = changes(api, "/", "since=now")["last_seq"]
    from objects.models import Item

    item = Item.objects.get(key="/f/edited")
    response = admin_client.post(f"/_admin/objects/item/{item.pk}/delete/", {"post": "yes"})
    assert response.status_code in (200, 302), response.status_code
    assert seen(changes(api, "/f/", f"since={since}")) == [("delete", "/f/edited")]


def test_a_failed_write_records_nothing(api):
    before = Change.objects.count()
    assert api.post("/f/bad", ["not", "an", "object"]).status_code == 400
    assert Change.objects.count() == before, "a refused write leaves no change"


@pytest.mark.parametrize("query", ["since=x", "since=-1", "since=1.5", "limit=0", "limit=10001", "limit=a",
                                   "wait=61", "wait=-1", "wait=nan", "wait=x"])
def test_bad_parameters_are_400(api, query):
    response = api.client.get(f"/f/_changes?{query}")
    assert response.status_code == 400, (query, response.content)
    assert body(response)["error"] == "invalid_changes"


def test_since_past_the_head_is_400(api):
    response = api.client.get("/f/_changes?since=999999")
    assert response.status_code == 400 and body(response)["error"] == "invalid_changes"


def test_wait_returns_when_nothing_comes(api):
    import time

    started = time.monotonic()
    answer = changes(api, "/f/", "since=now&wait=0.3")
    assert answer["changes"] == [] and time.monotonic() - started >= 0.3, "wait holds the answer that long"


def test_post_is_405(api):
    response = api.client.post("/f/_changes", "", content_type="application/json")
    assert response.status_code == 405 and response["Allow"] == "GET"


def test_reads_follow_the_read_rule(api, settings):
    settings.ISTORE_PUBLIC_READ = False
    response = api.client.get("/f/_changes")
    assert response.status_code == 401, "a private store's feed needs a token"


def test_a_since_older_than_retention_is_410(api, settings):
    api.post("/f/a", {})
    api.post("/f/b", {})
    first = changes(api, "/f/", "since=0")
    settings.ISTORE_CHANGES_RETENTION = 0
    call_command("prune_changes", stdout=open("/dev/null", "w"))
    response = api.client.get("/f/_changes?since=0")
    assert response.status_code == 410, response.content
    assert body(response)["error"] == "changes_expired"
    assert changes(api, "/f/", f"since={first['last_seq']}")["changes"] == [], "a follower that was current goes on"


def test_writes_prune_old_changes_by_themselves(api, settings, django_capture_on_commit_callbacks):
    from feed import pruning

    api.post("/f/a", {})
    changes(api, "/f/")
    settings.ISTORE_CHANGES_RETENTION = 0
    pruning._last_pruned[0] = float("-inf")  # as in a process that has not pruned for a while
    with django_capture_on_commit_callbacks(execute=True):
        api.post("/f/b", {})
    assert api.client.get("/f/_changes?since=0").status_code == 410, "the write pruned the old change"


def test_a_long_poll_answers_when_a_change_arrives(api, transactional_db):
    import threading
    import time

    since = changes(api, "/f/", "since=now")["last_seq"]
    timer = threading.Timer(0.3, lambda: api.post("/f/late", {}))
    started = time.monotonic()
    timer.start()
    try:
        answer = changes(api, "/f/", f"since={since}&wait=10")
    finally:
        timer.join()
    assert seen(answer) == [("create", "/f/late")], answer
    assert time.monotonic() - started < 5, "the long poll answered when the change came, not at the end of wait"
