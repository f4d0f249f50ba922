"""POST {dir}/_bulk: NDJSON lines merged, replaced and deleted, each line failing alone."""
import json

import pytest
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext

from objects.models import Item
from tests.conftest import body, url


def ndjson(*lines):
    return "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)


def bulk(api, directory, text, **extra):
    return api.client.post(url(directory) + "_bulk", text, content_type="application/x-ndjson", **extra)


def test_lines_merge_replace_and_delete(api):
    api.post("/b/old", {"a": 1, "b": 2})
    api.post("/b/gone", {"x": 1})
    response = bulk(api, "/b/", ndjson(
        {"key": "new", "metadata": {"n": 1}},
        {"key": "/b/old", "metadata": {"b": None, "c": 3}},
        {"key": "gone", "delete": True},
    ))
    assert response.status_code == 200, response.content
    assert body(response) == {"created": 1, "updated": 1, "deleted": 1, "errors": []}
    assert body(api.meta("/b/new"))["metadata"] == {"n": 1}, "a new key takes the line's metadata"
    assert body(api.meta("/b/old"))["metadata"] == {"a": 1, "c": 3}, "a line merges as RFC 7396 does"
    assert api.meta("/b/gone").status_code == 404, "a delete line deletes the key"


def test_replace_line_replaces_the_metadata(api):
    api.post("/b/k", {"a": 1})
    bulk(api, "/b/", ndjson({"key": "k", "metadata": {"z": 1}, "replace": True}))
    assert body(api.meta("/b/k"))["metadata"] == {"z": 1}, "replace: true drops the old fields"


def test_a_key_written_twice_sees_its_first_line(api):
    response = bulk(api, "/b/", ndjson({"key": "k", "metadata": {"a": 1}}, {"key": "k", "metadata": {"b": 2}},
                                       {"key": "k", "delete": True}, {"key": "k", "metadata": {"c": 3}}))
    assert body(response) == {"created": 2, "updated": 1, "deleted": 1, "errors": []}, body(response)
    assert body(api.meta("/b/k"))["metadata"] == {"c": 3}, "lines on one key apply in order"


@pytest.mark.parametrize("line, code", [
    ("{not json", "invalid_json"),
    ("[1, 2]", "invalid_line"),
    ({"metadata": {"a": 1}}, "invalid_line"),
    ({"key": "k", "metadata": {}, "colour": "red"}, "invalid_line"),
    ({"key": "k", "delete": True, "metadata": {}}, "invalid_line"),
    ({"key": "k", "replace": "yes", "metadata": {}}, "invalid_line"),
    ({"key": "k", "metadata": [1]}, "invalid_metadata"),
    ({"key": "k", "metadata": None}, "invalid_metadata"),
    ({"key": "/elsewhere/k", "metadata": {}}, "key_outside_dir"),
    ({"key": "a\u0001b", "metadata": {}}, "invalid_key"),
    ({"key": "x" * 5000, "metadata": {}}, "invalid_key"),
    ({"key": "sub/_search", "metadata": {}}, "reserved"),
    ({"key": "ftp://example.com/a", "metadata": {}}, "unknown_scheme"),
    ({"key": "nothing-here", "delete": True}, "no_such_key"),
])
def test_a_bad_line_fails_alone(api, line, code):
    response = bulk(api, "/b/", ndjson({"key": "before", "metadata": {}}, line, {"key": "after", "metadata": {}}))
    assert response.status_code == 200, response.content
    answer = body(response)
    assert [(e["line"], e["error"]) for e in answer["errors"]] == [(2, code)], answer
    assert answer["created"] == 2, "the good lines around a bad one are written"
    assert api.keys("/b/") == ["/b/after", "/b/before"], "the bad line wrote nothing"


def test_metadata_over_the_limit_fails_its_line(api, settings):
    settings.ISTORE_MAX_METADATA_BYTES = 100
    answer = body(bulk(api, "/b/", ndjson({"key": "big", "metadata": {"a": "x" * 200}},
                                          {"key": "small", "metadata": {"a": 1}})))
    assert [(e["line"], e["error"]) for e in answer["errors"]] == [(1, "metadata_too_large")], answer
    assert answer["created"] == 1


def test_a_merge_that_grows_past_the_limit_fails_its_line(api, settings):
    settings.ISTORE_MAX_METADATA_BYTES = 100
    api.post("/b/k", {"a": "x" * 60})
    answer = body(bulk(api, "/b/", ndjson({"key": "k", "metadata": {"b": "y" * 60}})))
    assert [e["error"] for e in answer["errors"]] == ["metadata_too_large"], answer
    assert body(api.meta("/b/k"))["metadata"] == {"a": "x" * 60}, "the failed merge wrote nothing"


def test_json_nested_too_deep_fails_its_line(api):
    deep = {"key": "k", "metadata": json.loads("{\"a\":" * 70 + "1" + "}" * 70)}
    answer = body(bulk(api, "/b/", ndjson(deep)))
    assert [e["error"] for e in answer["errors"]] == ["invalid_json"], answer


def test_a_line_over_the_length_limit_fails_alone(api, settings):
    settings.ISTORE_MAX_METADATA_BYTES = 100
    answer = body(bulk(api, "/b/", ndjson({"key": "long", "metadata": {"a": "x" * 2_000_000}},
                                          {"key": "next", "metadata": {}})))
    assert [(e["line"], e["error"]) for e in answer["errors"]] == [(1, "line_too_long")], answer
    assert answer["created"] == 1, "the line after a long one is read"


def test_lines_count_from_one_and_blank_lines_count(api):
    answer = body(bulk(api, "/b/", "\n" + ndjson("nope") + "\r\n"))
    assert [e["line"] for e in answer["errors"]] == [2], answer


def test_absolute_key_equal_to_the_directory_writes_its_own_item(api):
    answer = body(bulk(api, "/b/", ndjson({"key": "/b/", "metadata": {"folder": True}})))
    assert answer["created"] == 1, answer
    assert body(api.meta("/b/"))["metadata"] == {"folder": True}


def test_empty_body_writes_nothing(api):
    assert body(bulk(api, "/b/", "")) == {"created": 0, "updated": 0, "deleted": 0, "errors": []}


def test_delete_line_removes_the_content_too(api, django_capture_on_commit_callbacks):
    api.upload("/b/blob.bin", b"abc", content_type="application/octet-stream")
    name = Item.objects.get(key="/b/blob.bin").content_name
    with django_capture_on_commit_callbacks(execute=True):
        bulk(api, "/b/", ndjson({"key": "blob.bin", "delete": True}))
    assert not default_storage.exists(name), "a deleted key's content is removed"


def test_writes_need_a_token(secured_api):
    response = bulk(secured_api, "/b/", ndjson({"key": "k", "metadata": {}}))
    assert response.status_code == 401, response.content
    assert not Item.objects.exists(), "a refused bulk writes nothing"


def test_token_writer_becomes_the_owner(secured_api, django_user_model):
    from rest_framework.authtoken.models import Token

    user = django_user_model.objects.create_user("writer")
    token = Token.objects.create(user=user)
    response = bulk(secured_api, "/b/", ndjson({"key": "k", "metadata": {}}),
                    HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200, response.content
    assert Item.objects.get(key="/b/k").owner == user, "bulk writes record their writer as single writes do"


def test_get_is_405(api):
    response = api.client.get("/b/_bulk")
    assert response.status_code == 405 and response["Allow"] == "POST"


def test_a_batch_is_one_transaction_not_one_per_line(api):
    text = ndjson(*({"key": f"k{i}", "metadata": {"i": i}} for i in range(300)))
    with CaptureQueriesContext(connection) as queries:
        answer = body(bulk(api, "/b/", text))
    assert answer["created"] == 300
    assert len(queries) < 20, f"300 lines took {len(queries)} statements"


def test_a_chunked_stream_through_gunicorn_is_written_line_by_line(gunicorn, server_database, tmp_path):
    import requests

    base, _, _ = gunicorn({"DATABASE_URL": server_database, "ISTORE_DATA_DIR": str(tmp_path / "data")}, workers=1)
    count = 30_000

    def stream():  # requests sends a generator chunked, with no Content-Length
        for i in range(count):
            yield (json.dumps({"key": f"k{i:05d}", "metadata": {"i": i}}) + "\n").encode()

    response = requests.post(f"{base}/s/_bulk", data=stream(), timeout=300)
    assert response.status_code == 200, response.text
    assert response.json() == {"created": count, "updated": 0, "deleted": 0, "errors": []}
    last = requests.get(f"{base}/s/k{count - 1:05d}?meta=1", timeout=30)
    assert last.json()["metadata"] == {"i": count - 1}, "the last line of the stream was written"


@pytest.mark.parametrize("text", [
    '{"key": "k", "metadata": {"a": "nul \\u0000 inside"}}',
    '{"key": "k", "metadata": {"a": "lone \\uDA00 surrogate"}}',
    '{"key": "k", "metadata": {"a": 1e400}}',
    '{"key": "k", "metadata": {"a": -1E+999}}',
    '{"key": "k", "metadata": {"a": ' + "9" * 250 + 'e60}}',
    '{"key": "k", "metadata": {"a": ' + "9" * 400 + '.5}}',
    '{"key": "k", "metadata": {"a": NaN}}',
    '{"key": "k", "metadata": {"\\u0000": 1}}',
])
def test_json_a_database_cannot_store_fails_its_line(api, text):
    answer = body(bulk(api, "/b/", text + "\n" + ndjson({"key": "ok", "metadata": {}})))
    assert [(e["line"], e["error"]) for e in answer["errors"]] == [(1, "invalid_json")], answer
    assert api.keys("/b/") == ["/b/ok"], "the refused line wrote nothing"


@pytest.mark.parametrize("text, metadata", [
    ('{"key": "k", "metadata": {"e": "\\ud83d\\ude00", "n": 2.5e-05, "s": "file1000e000"}}',
     {"e": "\U0001f600", "n": 2.5e-05, "s": "file1000e000"}),
    ('{"key": "k", "metadata": {"digits": "' + "0" * 300 + '", "big": ' + "9" * 300 + '}}',
     {"digits": "0" * 300, "big": int("9" * 300)}),
    ('{"key": "k", "metadata": {"text": "caf\u00e9 \\u2603 \\"q\\" back\\\\slash\\nline\\u0001"}}',
     {"text": "caf\u00e9 \u2603 \"q\" back\\slash\nline\u0001"}),
])
def test_json_that_only_looks_suspect_is_stored_as_sent(api, text, metadata):
    answer = body(bulk(api, "/b/", text + "\n"))
    assert answer["created"] == 1, answer
    assert body(api.meta("/b/k"))["metadata"] == metadata, "the value read back is the value sent"


@pytest.mark.parametrize("value, fits", [("\u00e9" * 10, True), ("\u00e9" * 11, False), ("\n" * 10, True),
                                          ("\n" * 11, False), ("x" * 20, True), ("x" * 21, False)])
def test_the_size_limit_counts_compact_utf8_bytes_on_a_merge(api, settings, value, fits):
    settings.ISTORE_MAX_METADATA_BYTES = len('{"a":1,"b":""}') + 20  # é is 2 bytes, "\n" is 2 characters
    api.post("/b/k", {"a": 1})
    answer = body(bulk(api, "/b/", ndjson({"key": "k", "metadata": {"b": value}})))
    if fits:
        assert answer["updated"] == 1, f"{len(value)} × {value[0]!r} fits: {answer}"
        assert body(api.meta("/b/k"))["metadata"] == {"a": 1, "b": value}
    else:
        assert [e["error"] for e in answer["errors"]] == ["metadata_too_large"], answer
