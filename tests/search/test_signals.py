"""The packed side table follows every write: single and bulk, merge and
replace, delete and delete-tree, and stays cheap to delete."""
import json

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from objects import writing
from objects.models import Item
from objects.keys import PREFIX_CHARS
from search.models import MAX_FIELD_CHARS, Vector
from search.vectors import as_unit, extract, unpack

from .conftest import post_item


def rows(**filters):
    return {(v.key, v.field): v for v in Vector.objects.filter(**filters)}


def test_post_creates_packed_unit_rows(api):
    item = post_item(api, "/s/a", {"v": [3, 4], "w": [1, 0, 0], "name": "x"})
    found = rows()
    assert set(found) == {("/s/a", "v"), ("/s/a", "w")}
    row = found[("/s/a", "v")]
    assert row.item_id == item["_id"] and row.dim == 2 and row.key_prefix == "/s/a"
    assert np.allclose(unpack(bytes(row.vector), 2), [0.6, 0.8])


def test_unchanged_vector_keeps_its_row(api):
    post_item(api, "/s/a", {"v": [1, 2]})
    first = Vector.objects.get().id
    post_item(api, "/s/a", {"name": "renamed"})
    post_item(api, "/s/a", {"v": [2, 4]})  # same direction: same packed vector
    assert Vector.objects.get().id == first


def test_changed_vector_gets_a_new_row(api):
    post_item(api, "/s/a", {"v": [1, 2]})
    first = Vector.objects.get().id
    post_item(api, "/s/a", {"v": [2, 1]})
    row = Vector.objects.get()
    assert row.id > first
    assert np.allclose(unpack(bytes(row.vector), 2), as_unit([2, 1]))


def test_removed_or_replaced_vector_loses_its_row(api):
    post_item(api, "/s/a", {"v": [1, 2], "w": [1]})
    post_item(api, "/s/a", {"v": None})
    assert set(rows()) == {("/s/a", "w")}
    post_item(api, "/s/a", {"w": "text now"})
    assert not Vector.objects.exists()
    post_item(api, "/s/a", {"v": [1, 2]})
    post_item(api, "/s/a", {"other": 1}, method="put")
    assert not Vector.objects.exists()


def test_delete_key_deletes_its_rows(api):
    post_item(api, "/s/a", {"v": [1, 2]})
    post_item(api, "/s/b", {"v": [1, 2]})
    assert api.delete("/s/a").status_code == 200
    assert set(rows()) == {("/s/b", "v")}


def test_upload_keeps_vectors(api):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = api.post("/s/file.txt", {"metadata": json.dumps({"v": [1, 0]}),
                                         "file": SimpleUploadedFile("f.txt", b"hello", "text/plain")})
    assert response.status_code == 201, response.content
    assert set(rows()) == {("/s/file.txt", "v")}


def test_bulk_upsert_maintains_rows(db):
    created, updated = writing.upsert_many([(f"/b/{i:04d}", {"v": [1, i]}) for i in range(1200)])
    assert (created, updated) == (1200, 0)
    assert Vector.objects.filter(field="v").count() == 1200
    ids = dict(Item.objects.values_list("key", "id"))
    assert all(row.item_id == ids[row.key] for row in Vector.objects.all()[:50])
    before = set(Vector.objects.values_list("id", flat=True))
    writing.upsert_many([(f"/b/{i:04d}", {"v": [1, i] if i % 2 else [i, 1]}) for i in range(1200)])
    after = set(Vector.objects.values_list("id", flat=True))
    assert len(after) == 1200 and len(before & after) == 600  # the odd ones kept their vector and row


def test_delete_tree_deletes_rows_in_bulk(db):
    writing.upsert_many([(f"/big/{i:05d}", {"v": [1, i]}) for i in range(2000)])
    writing.upsert_many([("/keep/x", {"v": [1, 0]})])
    with CaptureQueriesContext(connection) as queries:
        assert writing.delete_tree("/big/") == 2000
    # A fixed number of statements per 500 items (the items, and one per side
    # table: vectors, recognition's features and tags), none per item.
    assert len(queries) <= 2 + 4 * (2000 // 500) + 4, [q["sql"][:80] for q in queries]
    assert set(rows()) == {("/keep/x", "v")}


def test_delete_single_item_query_count(api, django_assert_max_num_queries):
    post_item(api, "/s/a", {"v": [1, 2]})
    with django_assert_max_num_queries(12):
        assert api.delete("/s/a").status_code == 200
    assert not Vector.objects.exists()


def test_rolled_back_write_leaves_no_rows(db):
    from django.db import transaction

    with pytest.raises(RuntimeError):
        with transaction.atomic():
            writing.write("/s/rollback", {"v": [1, 2]})
            raise RuntimeError
    assert not Vector.objects.exists()


@pytest.mark.parametrize(
    "value, is_vector",
    [
        ([1, 2], True),
        ([1.5], True),
        ([0, 0, 1], True),
        ([10**30, 1], True),
        ([], False),
        ([0, 0], False),
        ([True, False], False),
        ([1, True], False),
        ([1, None], False),
        (["1"], False),
        ([[1, 2]], False),
        ([float("nan"), 1], False),
        ([float("inf"), 1], False),
        ([10**400, 1], False),
        ((1, 2), False),
        ({"a": 1}, False),
        (3, False),
    ],
)
def test_what_is_a_vector(value, is_vector):
    assert ("v" in extract({"v": value})) is is_vector


def test_long_field_names_are_not_tracked():
    longest = "v" * MAX_FIELD_CHARS
    assert extract({longest: [1], longest + "w": [1]}).keys() == {longest}


def test_longest_field_and_key_prefix_fit_one_index_entry(api):
    # Four UTF-8 bytes per character, varied so that PostgreSQL cannot
    # compress the index entry below its 2704-byte limit.
    wide = "".join(chr(0x10000 + (i * 7919) % 60000) for i in range(PREFIX_CHARS + 20))
    key, field = "/s/" + wide, wide[:MAX_FIELD_CHARS]
    post_item(api, key, {field: [1, 2]})
    assert rows()[(key, field)].key_prefix == key[:PREFIX_CHARS]
