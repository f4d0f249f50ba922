"""Indexed search: the contract's example with an index, freshness after
writes and deletes, rebuilds, the storage, the fallbacks and the command."""
import io

import numpy as np
import pytest
from django.core.files import File
from django.core.files.storage import FileSystemStorage, default_storage
from django.utils._os import safe_join
from django.core.management import CommandError, call_command

from objects import writing
from search import ann, exact
from search.models import Vector, VectorIndex
from search.vectors import as_unit

from .conftest import CONTRACT_DIR, CONTRACT_ORDER, create_index, keys_of, post_item, search, verb

TO = "/path/vec/http://example.com/0.jpg"


@pytest.fixture
def no_full_scan(monkeypatch):
    """Fail if a search falls back to scanning the whole directory."""

    def refuse(*args, **kwargs):
        raise AssertionError("the index was not used")

    monkeypatch.setattr(exact, "search", refuse)


def test_contract_example_with_index(contract, no_full_scan):
    body = create_index(contract, CONTRACT_DIR, "vec")
    assert body["indexed"] == 4
    record = VectorIndex.objects.get()
    assert record.dir == CONTRACT_DIR and record.field == "vec" and record.dim == 2 and record.count == 4
    assert default_storage.exists(record.storage_name)
    results = search(contract, CONTRACT_DIR, to=TO, by="vec", limit=10)
    assert keys_of(results) == CONTRACT_ORDER
    assert results[0]["_distance"] == pytest.approx(0.0, abs=1e-12)
    assert keys_of(search(contract, CONTRACT_DIR, vector=[0.5, 0.8], by="vec")) == CONTRACT_ORDER


def test_built_batch_by_batch(contract, settings, no_full_scan):
    settings.ISTORE_SEARCH_BUILD_BATCH = 3  # the contract's 4 vectors: two batches
    assert create_index(contract, CONTRACT_DIR, "vec")["indexed"] == 4, "both batches are counted"
    assert keys_of(search(contract, CONTRACT_DIR, to=TO, by="vec", limit=10)) == CONTRACT_ORDER, (
        "the vectors of both batches are found through the index")


def test_same_answers_with_and_without_index(contract):
    before = search(contract, CONTRACT_DIR, to=TO, by="vec")
    create_index(contract, CONTRACT_DIR, "vec")
    after = search(contract, CONTRACT_DIR, to=TO, by="vec")
    assert before == after


def test_deleted_after_indexing_never_returned(contract, no_full_scan):
    create_index(contract, CONTRACT_DIR, "vec")
    assert contract.delete("/path/vec/http://example.com/b.jpg").status_code == 200
    results = search(contract, CONTRACT_DIR, to=TO, by="vec")
    assert keys_of(results) == [CONTRACT_ORDER[0], CONTRACT_ORDER[2], CONTRACT_ORDER[3]]
    # A vector removed from metadata goes as well.
    post_item(contract, "/path/vec/http://example.com/a.jpg", {"vec": None})
    assert keys_of(search(contract, CONTRACT_DIR, to=TO, by="vec")) == [CONTRACT_ORDER[0], CONTRACT_ORDER[3]]


def test_added_and_changed_after_indexing_found(contract, no_full_scan):
    create_index(contract, CONTRACT_DIR, "vec")
    post_item(contract, "/path/vec/new", {"vec": [0.5, 0.79]})
    post_item(contract, "/path/vec/http://example.com/c.jpg", {"vec": [0.5, 0.81]})  # moved next to 0
    post_item(contract, "/outside/new", {"vec": [0.5, 0.8]})
    results = search(contract, CONTRACT_DIR, to=TO, by="vec", limit=3)
    assert keys_of(results) == [TO, "/path/vec/http://example.com/c.jpg", "/path/vec/new"]
    assert len(search(contract, CONTRACT_DIR, to=TO, by="vec", limit=100)) == 5


def test_rebuild_is_idempotent(contract, django_capture_on_commit_callbacks):
    first = create_index(contract, CONTRACT_DIR, "vec")
    old_name = VectorIndex.objects.get().storage_name
    with django_capture_on_commit_callbacks(execute=True):
        second = create_index(contract, CONTRACT_DIR, "vec")
    assert first == second
    record = VectorIndex.objects.get()
    assert record.storage_name != old_name
    assert default_storage.exists(record.storage_name)
    assert not default_storage.exists(old_name)
    assert keys_of(search(contract, CONTRACT_DIR, to=TO, by="vec")) == CONTRACT_ORDER


def test_index_only_serves_its_own_dir_and_field(contract):
    create_index(contract, CONTRACT_DIR, "vec")
    post_item(contract, "/path/other", {"vec": [0.5, 0.8]})
    post_item(contract, "/path/vec/sub/x", {"vec": [0.5, 0.8], "alt": [1, 0]})
    # The parent and the subdirectory scan exactly and still see everything of theirs.
    assert len(search(contract, "/path/", to=TO, by="vec", limit=100)) == 6
    assert keys_of(search(contract, "/path/vec/sub/", to=TO, by="vec")) == ["/path/vec/sub/x"]
    assert keys_of(search(contract, CONTRACT_DIR, vector=[1, 0], by="alt")) == ["/path/vec/sub/x"]


def test_one_index_per_vector_length(api):
    post_item(api, "/len/a", {"v": [1, 0]})
    post_item(api, "/len/b", {"v": [1, 0, 0]})
    post_item(api, "/len/c", {"v": [0, 1, 0]})
    assert create_index(api, "/len/", "v")["dims"] == {"2": 1, "3": 2}
    assert keys_of(search(api, "/len/", vector=[0, 1, 0], by="v")) == ["/len/c", "/len/b"]
    assert keys_of(search(api, "/len/", vector=[1, 0], by="v")) == ["/len/a"]
    # The 2-d vector goes: a rebuild drops that length's index.
    api.delete("/len/a")
    assert create_index(api, "/len/", "v")["dims"] == {"3": 2}
    assert sorted(VectorIndex.objects.values_list("dim", flat=True)) == [3]


@pytest.mark.parametrize("dtype", ["f32", "f16", "i8"])
def test_recall_against_exact(db, settings, tmp_path, dtype):
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}}}
    settings.ISTORE_SEARCH_INDEX_DTYPE = dtype
    settings.ISTORE_SEARCH_BUILD_BATCH = 1000  # three batches
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((3000, 32))
    writing.upsert_many([(f"/rc/{i:05d}", {"e": v.tolist()}) for i, v in enumerate(vectors)])
    ann.build("/rc/", "e")
    hits = 0
    for q in range(40):
        query = as_unit(rng.standard_normal(32).tolist())[None]
        want = {item.key for item, _ in exact.search("/rc/", "e", 32, query, 10)}
        got = ann.search("/rc/", "e", 32, query, 10)
        assert [d for _, d in got] == sorted(d for _, d in got)
        hits += len(want & {item.key for item, _ in got})
    assert VectorIndex.objects.get().count == 3000, "every batch was indexed"
    assert hits / 400 >= 0.95, f"recall@10 of a {dtype} index: {hits / 400}"


def test_many_deleted_since_build_falls_back_to_exact(api):
    for i in range(300):
        post_item(api, f"/fb/{i:03d}", {"v": [1, i / 300]})
    create_index(api, "/fb/", "v")
    # Delete most of the nearest, so the index's candidates are nearly all gone.
    writing.delete_tree("/fb/")
    post_item(api, "/fb/last", {"v": [0, 1]})
    assert keys_of(search(api, "/fb/", vector=[1, 0], by="v")) == ["/fb/last"]
    for i in range(290):
        post_item(api, f"/fb/{i:03d}", {"v": [1, i / 300]})
    results = search(api, "/fb/", vector=[1, 0], by="v", limit=5)
    assert keys_of(results) == ["/fb/000", "/fb/001", "/fb/002", "/fb/003", "/fb/004"]


def test_missing_index_file_falls_back_to_exact(contract):
    create_index(contract, CONTRACT_DIR, "vec")
    default_storage.delete(VectorIndex.objects.get().storage_name)
    ann.clear_cache()
    assert keys_of(search(contract, CONTRACT_DIR, to=TO, by="vec")) == CONTRACT_ORDER


def test_loaded_once_per_process(contract, monkeypatch):
    create_index(contract, CONTRACT_DIR, "vec")
    record = VectorIndex.objects.get()
    first = ann.load(record)
    assert ann.load(record) is first
    create_index(contract, CONTRACT_DIR, "vec")  # a new version is loaded anew
    assert ann.load(VectorIndex.objects.get()) is not first


def test_deleting_the_directory_drops_its_index(contract, django_capture_on_commit_callbacks):
    create_index(contract, CONTRACT_DIR, "vec")
    name = VectorIndex.objects.get().storage_name
    with django_capture_on_commit_callbacks(execute=True):
        response = contract.delete("/path/")
    assert response.json() == {"deleted": 4}
    assert not VectorIndex.objects.exists() and not Vector.objects.exists()
    assert not default_storage.exists(name)
    assert search(contract, CONTRACT_DIR, to=TO, by="vec", expect=400)


class RemoteLikeStorage(FileSystemStorage):
    """A storage without local paths, as S3's: files are only opened."""

    def path(self, name):
        raise NotImplementedError("This backend doesn't support absolute paths.")

    def _open(self, name, mode="rb"):
        return File(open(safe_join(self.location, name), mode))


def test_index_through_remote_storage(contract, settings, tmp_path, no_full_scan):
    """Storages without local paths (S3) are downloaded under ISTORE_DATA_DIR."""
    settings.ISTORE_DATA_DIR = tmp_path / "data"
    create_index(contract, CONTRACT_DIR, "vec")
    ann.clear_cache()
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "tests.search.test_ann.RemoteLikeStorage",
        "OPTIONS": {"location": str(tmp_path / "storage")}}}
    assert keys_of(search(contract, CONTRACT_DIR, to=TO, by="vec")) == CONTRACT_ORDER
    assert list((tmp_path / "data" / "search-cache").rglob("*.usearch"))
    assert ann.load(VectorIndex.objects.get()) is ann.load(VectorIndex.objects.get())


def test_build_index_command(contract, no_full_scan):
    out, err = io.StringIO(), io.StringIO()
    call_command("build_index", CONTRACT_DIR, "vec", stdout=out, stderr=err)
    assert "indexed 4 vectors of 2 numbers" in out.getvalue()
    assert "indexing" in err.getvalue()  # the progress bar
    assert VectorIndex.objects.get().count == 4
    assert keys_of(search(contract, CONTRACT_DIR, to=TO, by="vec")) == CONTRACT_ORDER
    call_command("build_index", CONTRACT_DIR, "vec", "--no-progress", stdout=io.StringIO())
    assert VectorIndex.objects.count() == 1


def test_build_index_command_errors(contract):
    with pytest.raises(CommandError, match="ending in '/'"):
        call_command("build_index", "/path/vec", "vec")
    with pytest.raises(CommandError, match="No item"):
        call_command("build_index", CONTRACT_DIR, "missing", stdout=io.StringIO())
    with pytest.raises(CommandError, match="control character"):
        call_command("build_index", "/bad\u0001/", "vec")


def test_index_verb_through_form_content_type(contract):
    response = verb(contract, CONTRACT_DIR + "_create_index", '{"similar": {"by": "vec"}}',
                    content_type="application/x-www-form-urlencoded")
    assert response.status_code == 201


def test_much_written_since_build_searches_exactly(contract, monkeypatch):
    create_index(contract, CONTRACT_DIR, "vec")
    calls = []
    real = exact.search
    monkeypatch.setattr(exact, "search", lambda *args: calls.append(args) or real(*args))
    monkeypatch.setattr(exact, "RELOAD_AFTER", 3)
    post_item(contract, "/path/vec/n1", {"vec": [0.5, 0.8]})
    post_item(contract, "/path/vec/n2", {"vec": [0.5, 0.8]})
    post_item(contract, "/path/vec/n3", {"vec": [0.5, 0.8]})
    results = search(contract, CONTRACT_DIR, to=TO, by="vec", limit=4)
    assert keys_of(results) == [TO, "/path/vec/n1", "/path/vec/n2", "/path/vec/n3"] and not calls
    post_item(contract, "/path/vec/n4", {"vec": [0.5, 0.8]})
    results = search(contract, CONTRACT_DIR, to=TO, by="vec", limit=5)
    assert keys_of(results) == [TO, "/path/vec/n1", "/path/vec/n2", "/path/vec/n3", "/path/vec/n4"]
    assert len(calls) == 1


def test_rows_written_since_the_build_stay_found_as_other_directories_grow(api_tx, no_full_scan):
    for i in range(20):
        post_item(api_tx, f"/fresh/{i:03d}", {"v": [1, 0.05 * (i + 1)]})
    create_index(api_tx, "/fresh/", "v")
    for i in range(30):  # written after the build, elsewhere: walked once by this process
        post_item(api_tx, f"/elsewhere/{i:03d}", {"v": [1, 0]})
    assert keys_of(search(api_tx, "/fresh/", vector=[1, 0], by="v", limit=1)) == ["/fresh/000"]
    post_item(api_tx, "/fresh/new", {"v": [1, 0.001]})
    assert keys_of(search(api_tx, "/fresh/", vector=[1, 0], by="v", limit=1)) == ["/fresh/new"], (
        "a row written under the directory after the last search is found")
    assert keys_of(search(api_tx, "/fresh/", vector=[1, 0], by="v", limit=1)) == ["/fresh/new"], (
        "and still found when the search remembers it")
    assert api_tx.delete("/fresh/new").status_code == 200
    assert keys_of(search(api_tx, "/fresh/", vector=[1, 0], by="v", limit=1)) == ["/fresh/000"], (
        "a remembered row that was deleted is not returned")
    post_item(api_tx, "/fresh/001", {"v": [1, 0.0001]})  # changed: a new row replaces the indexed one
    assert keys_of(search(api_tx, "/fresh/", vector=[1, 0], by="v", limit=2)) == ["/fresh/001", "/fresh/000"], (
        "a changed vector is ranked by its new value, once")
