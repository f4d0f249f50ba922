"""Operations commands: export_items, import_items, import_files, import_urls (issue 8 §4)."""
import base64
import hashlib
import io
import json
import os
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError

from objects import content, writing
from objects.management.commands import export_items, import_items
from objects.models import Item

pytestmark = pytest.mark.django_db

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000185d4b3b10000000049454e44ae426082")


# A stderr that says it is a terminal, so the progress bar is drawn.
Tty = type("Tty", (io.StringIO,), {"isatty": lambda self: True})


def run(name, *args, fails=False, tty=False, **options):
    """Run a command; return ``(CommandError message or None, stdout, stderr)``."""
    out, err = io.StringIO(), Tty() if tty else io.StringIO()
    message = None
    if fails:
        with pytest.raises(CommandError) as raised:
            call_command(name, *args, stdout=out, stderr=err, **options)
        message = str(raised.value)
    else:
        call_command(name, *args, stdout=out, stderr=err, **options)
    return message, out.getvalue(), err.getvalue()


def upload(key, data, content_type="", metadata=None):
    stored = content.store_stream(io.BytesIO(data).read, key, content_type)
    return writing.write(key, metadata, stored=stored)[0]


def item(key):
    return Item.objects.get(key=key)


def blob(found):
    with content.open_content(found.content_name) as handle:
        return handle.read()


def blobs(tmp_path):
    return sorted(p for p in (tmp_path / "content").rglob("*") if p.is_file())


def lines(path):
    return Path(path).read_bytes().decode("utf-8").splitlines()


def jsonl(path, *records):
    Path(path).write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


def url_file(tmp_path, data, name="urls.txt"):
    (tmp_path / name).write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return str(tmp_path / name)


def restart_empty(settings, tmp_path):
    """An empty database and an empty content storage, as on a new machine."""
    from django.db import connection

    if connection.vendor == "postgresql":
        # Inside the test's transaction, deferred foreign-key checks would
        # make TRUNCATE refuse to run; check them now.
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    call_command("flush", interactive=False, verbosity=0)
    settings.STORAGES = {**settings.STORAGES, "default": {
        **settings.STORAGES["default"], "OPTIONS": {"location": str(tmp_path / "new-content")}}}
    assert Item.objects.count() == 0


# --- export_items --------------------------------------------------------------------------------

def test_export_writes_api_rendering_and_content_in_key_order(tmp_path):
    writing.write("/e/b", {"n": 2})
    png = upload("/e/a.png", PNG, metadata={"n": 1})
    writing.write("/e/sub/", {"folder": True})
    writing.write("/other/x", {"n": 3})
    _, out, _ = run("export_items", str(tmp_path / "e.jsonl"), prefix="/e/")
    rows = [json.loads(line) for line in lines(tmp_path / "e.jsonl")]
    assert [row["_filepath"] for row in rows] == ["/e/a.png", "/e/b", "/e/sub/"], "key order, subtree only"
    assert rows[1] == json.loads(json.dumps(item("/e/b").as_dict())), "a line is the API rendering"
    assert base64.b64decode(rows[0].pop("_data")) == PNG
    assert rows[0] == json.loads(json.dumps(png.as_dict()))
    sha = hashlib.sha256(PNG).hexdigest()
    assert rows[0]["_content"] == {"size": len(PNG), "type": "image/png", "etag": sha}
    summary = f"Exported 3 items from /e/ to {tmp_path / 'e.jsonl'} (1 with content, {len(PNG)} bytes of it)"
    assert summary in out
    assert not list(tmp_path.glob(".e.jsonl.*")), "the temporary file is renamed into place"
    _, out, err = run("export_items", "-")
    assert [json.loads(line)["_filepath"] for line in out.splitlines()][-1] == "/other/x", "- is stdout"
    assert "Exported 4 items from / to stdout" in err, "the summary keeps out of the data"


def test_export_streams_content_through_short_reads(tmp_path, monkeypatch):
    data = os.urandom(10_000)
    upload("/big/blob.bin", data)

    class Trickle(io.BytesIO):
        def read(self, size=-1):
            return super().read(7)  # storage may return fewer bytes than asked

    monkeypatch.setattr(content, "open_content", lambda name: Trickle(data))
    monkeypatch.setattr(export_items, "CHUNK", 30)
    run("export_items", str(tmp_path / "big.jsonl"))
    row = json.loads(lines(tmp_path / "big.jsonl")[0])
    assert base64.b64decode(row["_data"]) == data
    assert list(row)[-1] == "_data", "_data is the last field, so import_items can stream it"


def test_export_reports_a_missing_or_damaged_blob_and_keeps_the_rest(tmp_path):
    writing.write("/d/a", {"ok": True})
    gone = upload("/d/b.txt", b"gone")
    damaged = upload("/d/c.txt", b"original bytes")
    writing.write("/d/d", {"ok": True})
    content.delete_content(gone.content_name)
    Path(content.local_path(damaged.content_name)).write_bytes(b"flipped bytes!")
    message, _, err = run("export_items", str(tmp_path / "d.jsonl"), fails=True)
    assert "2 items could not be exported" in message
    assert "'/d/b.txt'" in err and "cannot be read" in err and "'/d/c.txt'" in err and "SHA-256" in err
    assert [json.loads(line)["_filepath"] for line in lines(tmp_path / "d.jsonl")] == ["/d/a", "/d/d"], \
        "the half-written line of the damaged blob is cut off; the file stays valid JSON Lines"
    message, _, _ = run("export_items", "-", fails=True)
    assert "'/d/c.txt': its content is damaged; export aborted" in message, "half a line on stdout is fatal"


@pytest.mark.parametrize("output, options, expected", [
    ("o.jsonl", {"prefix": "photos"}, "must be a directory"),
    ("o.jsonl", {"prefix": "/photos"}, "must be a directory"),
    ("o.jsonl", {"prefix": "/_admin/"}, "reserved"),
    ("o.jsonl", {"prefix": "/a/\x01/"}, "control character"),
    ("missing/out.jsonl", {}, "does not exist"),
    (".", {}, "is a directory"),
])
def test_export_bad_arguments(tmp_path, output, options, expected):
    assert expected in run("export_items", str(tmp_path / output), fails=True, **options)[0]


def test_progress_bar_only_on_a_terminal(tmp_path):
    writing.write("/p/a", {})
    assert "export: " in run("export_items", str(tmp_path / "p.jsonl"), tty=True)[2], "a terminal gets a bar"
    assert run("export_items", str(tmp_path / "p.jsonl"), tty=True, no_progress=True)[2] == ""
    assert run("export_items", str(tmp_path / "p.jsonl"))[2] == "", "no bar when stderr is not a terminal"
    urls = url_file(tmp_path, "http://e.com/1\nnope\n")
    _, _, err = run("import_urls", urls, prefix="/w/", fails=True, tty=True)
    assert "import: " in err and "\r" in err and "line 2: " in err, "problems are written around the bar"


# --- import_items ----------------------------------------------------------------------------------

def make_store():
    writing.write("/rt/", {"folder": "root"})
    writing.write("/rt/plain", {"n": 1, "nested": {"list": [1, 2.5, None, "x"]}})
    upload("/rt/pixel", PNG, metadata={"kind": "image"})
    upload("/rt/notes", b"hello\n", content_type="text/x-custom; charset=utf-8")
    writing.write("/rt/gap", {})
    writing.write("/rt/http://example.com/a.jpg?x=1", {"src": True})
    writing.write("/rt/日本/ü %3F?.txt", {"名前": "値"})
    upload("/rt/empty.bin", b"", content_type="application/octet-stream")
    writing.delete("/rt/gap")  # an id gap must survive the round trip
    Item.objects.filter(key="/rt/plain").update(created="2020-01-02T03:04:05+00:00")


def test_round_trip_export_flush_import_export(tmp_path, settings):
    make_store()
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    run("export_items", str(first))
    imported_ids = [json.loads(line)["_id"] for line in lines(first)]
    restart_empty(settings, tmp_path)
    _, out, _ = run("import_items", str(first))
    assert f"{len(imported_ids)} created, 0 updated, 0 failed" in out
    run("export_items", str(second))
    assert lines(second) == lines(first), "export → flush → import → export gives identical lines"
    assert blob(item("/rt/pixel")) == PNG and item("/rt/notes").content_type == "text/x-custom; charset=utf-8"
    new = writing.write("/rt/after", {})[0]
    assert new.id > max(imported_ids), "new ids continue above every imported id"


def test_new_ids_stay_above_ids_used_before_the_import(tmp_path):
    high = writing.write("/ids/high", {})[0]
    writing.delete("/ids/high")
    Item.objects.filter(id=7).delete()
    run("import_items", jsonl(tmp_path / "ids.jsonl", {"_id": 7, "_filepath": "/ids/seven", "metadata": {}}))
    assert item("/ids/seven").id == 7
    new = writing.write("/ids/next", {})[0]
    assert new.id > high.id, "the id counter never goes down: ids are never reused"


def test_import_updates_an_item_with_the_same_id(tmp_path, django_capture_on_commit_callbacks):
    original = upload("/u/a.txt", b"first", metadata={"v": 1, "keep": "no"})
    writing.write("/u/meta", {"a": 1})
    run("export_items", str(tmp_path / "u.jsonl"))
    changed = upload("/u/a.txt", b"second version", metadata={"v": 2})
    upload("/u/meta", b"added later")
    with django_capture_on_commit_callbacks(execute=True):
        _, out, _ = run("import_items", str(tmp_path / "u.jsonl"))
    restored = item("/u/a.txt")
    assert "0 created, 2 updated" in out
    assert restored.id == original.id and restored.metadata == {"v": 1, "keep": "no"}
    assert blob(restored) == b"first" and restored.content_etag == original.content_etag
    assert not Path(content.local_path(changed.content_name)).exists(), "the replaced blob is deleted"
    assert not item("/u/meta").has_content, "restore is exact: no content in the line, none after"


def test_conflicting_ids_and_keys_fail_alone_and_write_nothing(tmp_path):
    taken = writing.write("/c/taken", {"orig": True})[0]
    other = writing.write("/c/other", {"orig": True})[0]
    free_id = max(taken.id, other.id) + 100
    path = jsonl(
        tmp_path / "c.jsonl",
        {"_id": free_id, "_filepath": "/c/taken", "metadata": {"new": 1}, "_data": "YWJj",
         "_content": {"size": 3, "type": "text/plain", "etag": hashlib.sha256(b"abc").hexdigest()}},
        {"_id": other.id, "_filepath": "/c/elsewhere", "metadata": {"new": 2}},
        {"_id": free_id + 1, "_filepath": "/c/fine", "metadata": {"ok": True}},
    )
    before = blobs(tmp_path)
    message, out, err = run("import_items", path, fails=True)
    assert "2 lines failed" in message and "1 created" in out
    assert f"line 1: the key '/c/taken' is registered with _id {taken.id}" in err
    assert f"line 2: _id {other.id} belongs to another key, '/c/other'" in err
    assert item("/c/taken").metadata == {"orig": True} and not item("/c/taken").has_content
    assert not Item.objects.filter(key="/c/elsewhere").exists() and item("/c/fine").id == free_id + 1
    assert blobs(tmp_path) == before, "the blob stored for a failed line is deleted again"


C3 = b'"_content": {"size": 3, "type": "", "etag": "e"}'


@pytest.mark.parametrize("line, expected", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"_filepath": "/x"}', "_id must be a positive integer"),
    (b'{"_id": true, "_filepath": "/x"}', "_id must be a positive integer"),
    (b'{"_id": 9, "_filepath": "x"}', "must start with '/'"),
    (b'{"_id": 9, "_filepath": "/_admin/x"}', "reserved"),
    (b'{"_id": 9, "_filepath": "/x/_search"}', "verb"),
    (b'{"_id": 9, "_filepath": "/x", "metadata": [1]}', "JSON object"),
    (b'{"_id": 9, "_filepath": "/x", "name": 1}', "unknown fields"),
    (b'{"_id": 9, "_filepath": "/x", "_created": "yesterday"}', "ISO 8601"),
    (b'{"_id": 9, "_filepath": "/x", "_data": "AAAA"}', "_data without _content"),
    (b'{"_id": 9, "_filepath": "/x", ' + C3 + b"}", "without _data"),
    (b'{"_id": 9, "_filepath": "/x", ' + C3 + b', "_data": "!!"}', "not valid base64"),
    (b'{"_id": 9, "_filepath": "/x", ' + C3 + b', "_data": "YWJj"}', "the backup is damaged"),
    (b'{"_id": 9, "_filepath": "/x", ' + C3.replace(b"3", b"9") + b', "_data": "YWJj"}',
     "ended after 3 of 9"),
    (b'{"_id": 9, "_filepath": "/x/", ' + C3 + b', "_data": "YWJj"}', "only a plain key"),
    (b"\xff\xfe", "UTF-8"),
])
def test_bad_lines_are_reported_and_the_rest_imported(tmp_path, line, expected):
    good = json.dumps({"_id": 123456, "_filepath": "/good", "metadata": {}}).encode()
    (tmp_path / "bad.jsonl").write_bytes(line + b"\n\n" + good + b"\n")
    message, out, err = run("import_items", str(tmp_path / "bad.jsonl"), fails=True)
    assert "1 lines failed" in message and err.startswith("line 1: ") and expected in err, err
    assert "1 created" in out and Item.objects.filter(key="/good").exists()
    assert blobs(tmp_path) == []


def test_import_again_is_cheap_and_changes_nothing(tmp_path):
    make_store()
    run("export_items", str(tmp_path / "again.jsonl"))
    before = blobs(tmp_path)
    _, out, _ = run("import_items", str(tmp_path / "again.jsonl"))
    assert "0 created, 7 updated, 0 failed; 3 blobs already in place were kept" in out
    assert blobs(tmp_path) == before, "blobs already in place are not uploaded again"
    run("export_items", str(tmp_path / "again2.jsonl"))
    assert lines(tmp_path / "again2.jsonl") == lines(tmp_path / "again.jsonl")


def test_over_long_lines_are_streamed(tmp_path, settings, monkeypatch):
    data = os.urandom(5000)
    upload("/long/a.bin", data, metadata={"tricky": {"_data": "x"}, "s": ',"_data":"', "n": 1})
    upload("/long/b.txt", b"small")
    writing.write("/long/c", {"after": True})
    run("export_items", str(tmp_path / "long.jsonl"))
    restart_empty(settings, tmp_path)
    monkeypatch.setattr(import_items, "LINE_LIMIT", 200)
    monkeypatch.setattr("objects.management.CHUNK", 64)
    assert "3 created" in run("import_items", str(tmp_path / "long.jsonl"))[1]
    assert blob(item("/long/a.bin")) == data and item("/long/a.bin").metadata["tricky"] == {"_data": "x"}
    assert blob(item("/long/b.txt")) == b"small" and item("/long/c").metadata == {"after": True}


def test_a_broken_long_line_does_not_lose_the_next_line(tmp_path, monkeypatch):
    payload = os.urandom(600)
    data = base64.b64encode(payload).decode()
    head = {"_id": 50, "_filepath": "/long/x", "metadata": {"pad": "p" * 300},
            "_content": {"size": 600, "type": "", "etag": hashlib.sha256(payload).hexdigest()}}
    trailing = json.dumps(head)[:-1].encode() + f',"_data":"{data}","more":1}}\n'.encode()
    spaced = json.dumps({**head, "_id": 51, "_filepath": "/long/y", "_data": data}).encode() + b"\n"
    cut = json.dumps({**head, "_id": 52, "_filepath": "/long/z", "_data": "AAAA"}).encode()[:150] + b"\n"
    good = json.dumps({"_id": 53, "_filepath": "/long/ok", "metadata": {"pad": "p" * 300}}).encode() + b"\n"
    (tmp_path / "broken.jsonl").write_bytes(trailing + spaced + cut + good)
    monkeypatch.setattr(import_items, "LINE_LIMIT", 100)
    monkeypatch.setattr(import_items, "HEAD_LIMIT", 500)
    message, out, err = run("import_items", str(tmp_path / "broken.jsonl"), fails=True)
    assert "3 lines failed" in message, err
    assert "line 1: _data must be the last field" in err
    assert "line 2: the line is longer than 500 bytes and is not in export_items' layout" in err
    assert "line 3: not valid JSON" in err
    assert "1 created" in out and item("/long/ok").metadata == {"pad": "p" * 300}, "no content: parsed whole"
    assert blobs(tmp_path) == []


def test_a_refused_batch_is_retried_line_by_line(tmp_path, monkeypatch):
    records = [{"_id": 900 + n, "_filepath": f"/r/{n}", "metadata": {}} for n in range(3)]
    path = jsonl(tmp_path / "r.jsonl", *records)
    original = import_items.Command.write_batch

    def refuse_r1(self, batch):
        if any(record.key == "/r/1" for record in batch):
            raise IntegrityError("simulated concurrent writer")
        return original(self, batch)

    monkeypatch.setattr(import_items.Command, "write_batch", refuse_r1)
    _, out, err = run("import_items", path, fails=True)
    assert "line 2: the database refused it" in err and "2 created" in out
    assert sorted(Item.objects.filter(key__startswith="/r/").values_list("key", flat=True)) == [
        "/r/0", "/r/2"]


def test_import_from_stdin_and_bad_arguments(tmp_path, monkeypatch):
    data = json.dumps({"_id": 77, "_filepath": "/stdin/a", "metadata": {"x": 1}}).encode() + b"\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert "1 created" in run("import_items", "-")[1] and item("/stdin/a").id == 77
    assert "does not exist" in run("import_items", str(tmp_path / "nope.jsonl"), fails=True)[0]
    assert "is a directory" in run("import_items", str(tmp_path), fails=True)[0]
    assert "positive integer" in run("import_items", str(tmp_path), "--batch-size", "0", fails=True)[0]


# --- import_files ----------------------------------------------------------------------------------

@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "tree"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "pixel.png").write_bytes(PNG)
    (root / "notes.txt").write_bytes(b"just words\n")
    (root / "sub" / "deeper" / "data.bin").write_bytes(bytes(range(256)))
    (root / "sub" / "é space.txt").write_bytes(b"accent")
    return root


@pytest.fixture
def written(monkeypatch):
    """The keys passed to objects.writing.write, in order."""
    calls, real_write = [], writing.write
    monkeypatch.setattr(writing, "write", lambda *a, **k: calls.append(a[0]) or real_write(*a, **k))
    return calls


def test_import_files_uploads_every_file_through_writing(tree, written):
    _, out, _ = run("import_files", str(tree), prefix="/f/", metadata='{"batch": 1}')
    assert "4 created, 0 updated, 0 skipped, 0 failed" in out
    assert written == ["/f/notes.txt", "/f/pixel.png", "/f/sub/deeper/data.bin", "/f/sub/é space.txt"], \
        "every file goes through objects.writing.write, in key order"
    assert blob(item("/f/sub/deeper/data.bin")) == bytes(range(256))
    assert item("/f/pixel.png").content_type == "image/png"
    assert item("/f/pixel.png").content_etag == hashlib.sha256(PNG).hexdigest()
    assert item("/f/notes.txt").content_type.startswith("text/plain")
    assert item("/f/notes.txt").metadata == {"batch": 1}


def test_import_files_is_resumable(tree, tmp_path):
    run("import_files", str(tree), prefix="/f/")
    before = blobs(tmp_path)
    _, out, _ = run("import_files", str(tree), prefix="/f/")
    assert "0 created, 0 updated, 4 skipped, 0 failed" in out and blobs(tmp_path) == before
    (tree / "notes.txt").write_bytes(b"new words\n")
    (tree / "added.txt").write_bytes(b"added")
    assert "1 created, 1 updated, 3 skipped" in run("import_files", str(tree), prefix="/f/")[1]
    assert blob(item("/f/notes.txt")) == b"new words\n"
    name = item("/f/pixel.png").content_name
    _, out, _ = run("import_files", str(tree), prefix="/f/", metadata='{"tag": "x"}')
    assert "5 updated" in out and item("/f/pixel.png").metadata == {"tag": "x"}
    assert item("/f/pixel.png").content_name == name, "same bytes: metadata merged, nothing uploaded again"


def test_import_files_symlinks(tree, tmp_path):
    (tmp_path / "secret.txt").write_bytes(b"secret")
    (tree / "leak.txt").symlink_to(tmp_path / "secret.txt")
    (tree / "alias.png").symlink_to(tree / "pixel.png")
    (tree / "sub" / "loop").symlink_to(tree)
    _, out, err = run("import_files", str(tree), prefix="/f/")
    assert "skipped 'leak.txt': a symbolic link out of ROOT" in err and "1 skipped" in out
    assert not Item.objects.filter(key="/f/leak.txt").exists()
    assert blob(item("/f/alias.png")) == PNG, "a link inside ROOT is followed"
    assert not Item.objects.filter(key__startswith="/f/sub/loop/sub/loop/").exists(), "a loop is walked once"


def test_import_files_key_order_and_failures(tree, written, settings):
    (tree / "sub.txt").write_bytes(b"sorts before sub/ bytewise")
    (tree / os.fsdecode(b"bad-\xff.txt")).write_bytes(b"not UTF-8")
    message, out, err = run("import_files", str(tree), prefix="/f/", fails=True)
    assert written == sorted(written, key=lambda key: key.encode("utf-8")), "files go in bytewise key order"
    assert written.index("/f/sub.txt") < written.index("/f/sub/deeper/data.bin")
    assert "1 files failed" in message and "5 created" in out and "is not valid UTF-8" in err
    settings.ISTORE_MAX_UPLOAD_BYTES = 100
    (tree / "sub" / "deeper" / "data.bin").write_bytes(bytes(range(200)))
    message, out, err = run("import_files", str(tree), prefix="/f/", fails=True)
    assert "2 files failed" in message and "4 skipped" in out
    assert "failed '/f/sub/deeper/data.bin'" in err and "ISTORE_MAX_UPLOAD_BYTES" in err


@pytest.mark.parametrize("root, options, expected", [
    ("tree", {}, "required: --prefix"),
    ("tree", {"prefix": "/f"}, "must be a directory"),
    ("tree", {"prefix": "/f/http://example.com/"}, "embeds a source URL"),
    ("tree", {"prefix": "/f/", "metadata": "{bad"}, "not valid JSON"),
    ("tree", {"prefix": "/f/", "metadata": "[1]"}, "JSON object"),
    ("tree/missing", {"prefix": "/f/"}, "does not exist"),
    ("tree/notes.txt", {"prefix": "/f/"}, "is not a directory"),
])
def test_import_files_bad_arguments(tree, root, options, expected):
    assert expected in run("import_files", str(tree.parent / root), fails=True, **options)[0]
    assert Item.objects.count() == 0


# --- import_urls ----------------------------------------------------------------------------------

def test_import_urls_registers_source_keys_and_merges_metadata_again(tmp_path):
    path = url_file(tmp_path, "# a comment\nhttp://example.com/a.jpg\n\n"
                              'https://example.com/b.png\t{"name": "b"}\r\nfile:///picts/c.jpg\n')
    assert "3 created, 0 updated, 0 failed" in run("import_urls", path, prefix="/web/")[1]
    assert item("/web/https://example.com/b.png").metadata == {"name": "b"}
    assert item("/web/http://example.com/a.jpg").dir == "/web/", "the URL is the key's embedded source"
    assert Item.objects.filter(key="/web/file:///picts/c.jpg").exists()
    run("import_urls", url_file(tmp_path, 'http://example.com/a\t{"a": 1, "drop": 1}\n'), prefix="/web/")
    second = url_file(tmp_path, 'http://example.com/a\t{"b": 2, "drop": null}\n'
                                "http://example.com/new\n", "2.txt")
    _, out, _ = run("import_urls", second, prefix="/web/", metadata='{"src": "list", "b": 0}')
    assert "1 created, 1 updated" in out, "running a list again is harmless: it merges"
    assert item("/web/http://example.com/a").metadata == {"a": 1, "b": 2, "src": "list"}, \
        "a line's metadata wins"
    assert item("/web/http://example.com/new").metadata == {"src": "list", "b": 0}


def test_import_urls_reports_bad_lines_and_imports_the_rest(tmp_path):
    path = url_file(tmp_path, b"not a url\nftp://example.com/x\nhttp://example.com/ok\t{bad json\n"
                              b"http://example.com/list\t[1]\nhttp://example.com/" + b"x" * 5000 + b"\n"
                              b"http://example.com/\xff\nhttp://example.com/_search\n"
                              b"http://example.com/good\n")
    message, out, err = run("import_urls", path, prefix="/web/", fails=True)
    assert "7 lines failed" in message and "1 created" in out
    for number, expected in [(1, "is not a source URL"), (2, "'ftp'"), (3, "not valid JSON"),
                             (4, "JSON object"), (5, "at most 4096 bytes"), (6, "UTF-8"), (7, "verb")]:
        assert expected in err.split(f"line {number}: ")[1].split("\n")[0]
    assert list(Item.objects.values_list("key", flat=True)) == ["/web/http://example.com/good"]


def test_import_urls_in_batches_retried_line_by_line_when_refused(tmp_path, monkeypatch):
    calls, real = [], writing.upsert_many

    def upsert(entries, **kwargs):
        calls.append(len(entries))
        if len(entries) > 1 and any(key.endswith("/bad") for key, _ in entries):
            raise IntegrityError("simulated")
        return real(entries, **kwargs)

    monkeypatch.setattr(writing, "upsert_many", upsert)
    path = url_file(tmp_path, "".join(f"http://example.com/{n}\n" for n in range(5)) + "http://e.com/bad\n")
    _, out, _ = run("import_urls", path, prefix="/web/", batch_size=2)
    assert calls == [2, 2, 2, 1, 1] and "6 created" in out, "the refused batch [4, bad] is retried alone"


@pytest.mark.parametrize("options, expected", [
    ({}, "required: --prefix"),
    ({"prefix": "web/"}, "must be a directory"),
    ({"prefix": "/web/", "metadata": "{"}, "not valid JSON"),
])
def test_import_urls_bad_arguments(tmp_path, options, expected):
    assert expected in run("import_urls", url_file(tmp_path, "http://e.com/1\n"), fails=True, **options)[0]
    assert "does not exist" in run("import_urls", str(tmp_path / "none.txt"), prefix="/w/", fails=True)[0]
