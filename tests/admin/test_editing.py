"""The item page: metadata editing with merge/replace semantics, adding and deleting."""
import json

import pytest
from django.contrib.admin.models import LogEntry
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from objects.admin import browse
from objects.models import Item

from ..conftest import body
from .conftest import ADMIN, folder_url, item_url, png

pytestmark = pytest.mark.django_db


def save(client, item, metadata, mode="replace", **extra):
    text = metadata if isinstance(metadata, str) else json.dumps(metadata)
    return client.post(item_url(item), {"metadata": text, "mode": mode, **extra})


def reload(item):
    return Item.objects.get(pk=item.pk)


def test_item_page_shows_read_only_facts_and_the_json(admin_client, put):
    item = put("/a/b.jpg", {"name": "ünïcode", "n": 1})
    response = admin_client.get(item_url(item))
    page = response.content.decode()
    assert response.status_code == 200
    assert '<code class="istore-key">/a/b.jpg</code>' in page
    assert f'<td class="istore-id">{item.pk}</td>' in page
    assert "_created" in page and "_updated" in page
    assert json.loads(response.context["form"]["metadata"].value()) == {"name": "ünïcode", "n": 1}
    assert "ünïcode" in page  # shown as typed, not \u-escaped
    # The key, the id and the times are not form fields at all.
    assert set(response.context["form"].fields) == {"metadata", "mode", "version"}


def test_replace_sets_exactly_the_object_and_the_api_sees_it(admin_client, api, put):
    item = put("/a/b", {"a": 1, "b": 2})
    response = save(admin_client, item, {"b": 3, "c": [1, 2]})
    assert response.status_code == 302 and response.url == item_url(item)
    assert body(api.meta("/a/b"))["metadata"] == {"b": 3, "c": [1, 2]}


def test_merge_applies_a_merge_patch(admin_client, put):
    item = put("/a/b", {"a": 1, "b": {"c": 1}, "keep": True})
    save(admin_client, item, {"a": None, "b": {"d": 2}}, mode="merge")
    assert reload(item).metadata == {"b": {"c": 1, "d": 2}, "keep": True}


@pytest.mark.parametrize("text, message", [
    ('{"name": ', "not valid JSON (line 1, column 10)"),
    ("[1, 2]", "must be a JSON object"),
    ('"text"', "must be a JSON object"),
    ("", "Enter a JSON object"),
    ('{"a": ' * 100_000 + "1" + "}" * 100_000, "nests deeper than 64 levels"),
    ("[" * 100_000 + "]" * 100_000, "nests deeper than 64 levels"),
    ('{"a": ' * 100 + "1" + "}" * 100, "nests deeper than 64 levels"),
])
def test_invalid_json_is_refused_and_nothing_is_written(admin_client, put, text, message):
    item = put("/a/b", {"name": "before"})
    before = reload(item)
    response = save(admin_client, item, text)
    assert response.status_code == 200
    assert message in response.content.decode()
    after = reload(item)
    assert after.metadata == {"name": "before"} and after.updated == before.updated
    # The text stays in the editor to be fixed.
    assert response.context["form"]["metadata"].value() == text


def test_oversized_metadata_is_refused(admin_client, put, settings):
    settings.ISTORE_MAX_METADATA_BYTES = 40
    item = put("/a/b", {"n": "x" * 20})
    response = save(admin_client, item, {"n": "y" * 50})
    assert "ISTORE_MAX_METADATA_BYTES" in response.content.decode()
    # A merge whose result is too large is refused too.
    response = save(admin_client, item, {"m": "z" * 20}, mode="merge")
    assert response.status_code == 200 and "Nothing was saved" in response.content.decode()
    assert reload(item).metadata == {"n": "x" * 20}


def test_replace_over_a_newer_version_is_refused_merge_is_not(admin_client, put):
    item = put("/a/b", {"v": 1})
    version = admin_client.get(item_url(item)).context["form"]["version"].value()
    put("/a/b", {"v": 2, "other": "someone else's"})
    response = save(admin_client, item, {"v": 3}, version=version)
    assert response.status_code == 200 and "changed since you opened it" in response.content.decode()
    assert reload(item).metadata == {"v": 2, "other": "someone else's"}
    save(admin_client, item, {"v": 3}, mode="merge", version=version)
    assert reload(item).metadata == {"v": 3, "other": "someone else's"}


def test_key_and_id_cannot_be_changed_and_content_is_kept(admin_client, api, put):
    api.upload("/pics/cat.png", png(), "image/png")
    item = Item.objects.get(key="/pics/cat.png")
    save(admin_client, item, {"name": "cat"}, key="/pics/other", id=999, created="2000-01-01")
    after = reload(item)
    assert (after.key, after.pk, after.created) == ("/pics/cat.png", item.pk, item.created)
    assert after.content_name == item.content_name and after.metadata == {"name": "cat"}
    assert api.get("/pics/cat.png").status_code == 200


def test_edits_are_logged_in_history(admin_client, put):
    item = put("/a/b")
    save(admin_client, item, {"x": 1})
    entry = LogEntry.objects.get(object_id=str(item.pk))
    assert entry.is_change()
    assert admin_client.get(f"{ADMIN}{item.pk}/history/").status_code == 200


def test_delete_item_confirms_then_deletes_with_content(admin_client, api,
                                                       django_capture_on_commit_callbacks):
    api.upload("/pics/cat.png", png(), "image/png")
    item = Item.objects.get(key="/pics/cat.png")
    confirm = admin_client.get(f"{ADMIN}{item.pk}/delete/")
    assert "This deletes <strong>1 item</strong>" in confirm.content.decode()
    assert Item.objects.filter(pk=item.pk).exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"{ADMIN}{item.pk}/delete/")
    assert response.status_code == 302 and response.url == folder_url("/pics/")
    assert not Item.objects.filter(pk=item.pk).exists()
    assert api.get("/pics/cat.png").status_code == 404
    assert not default_storage.exists(item.content_name)


def test_gone_item_redirects_with_a_message(admin_client):
    response = admin_client.get(f"{ADMIN}424242/change/", follow=True)
    assert "may have been deleted" in response.content.decode()


def test_delete_folder_states_the_exact_count_then_deletes_the_tree(admin_client, api, put, monkeypatch):
    monkeypatch.setattr(browse, "COUNT_CAP", 3)
    for i in range(6):
        put(f"/tree/{i}")
    put("/tree/sub/deep/x")
    put("/tree/")
    api.upload("/tree/pic.png", png(), "image/png")
    siblings = [put("/tree0"), put("/treehouse/a"), put("/tre")]
    url = "/_admin/objects/item/delete-folder/?dir=/tree/"
    confirm = admin_client.get(url)
    assert confirm.context["count"] == 9
    assert "This deletes <strong>9 items</strong>" in confirm.content.decode()
    response = admin_client.post("/_admin/objects/item/delete-folder/", {"dir": "/tree/"}, follow=True)
    assert "Deleted 9 items under /tree/." in response.content.decode()
    assert response.redirect_chain[-1][0] == folder_url("/")
    assert sorted(Item.objects.values_list("key", flat=True)) == sorted(item.key for item in siblings)


def test_root_folder_cannot_be_deleted_from_the_admin(admin_client, put):
    put("/a")
    response = admin_client.post("/_admin/objects/item/delete-folder/", {"dir": "/"}, follow=True)
    assert "cannot be deleted" in response.content.decode()
    assert Item.objects.count() == 1
    assert admin_client.get(folder_url("/")).context["can_delete"] is False


def test_add_item_with_metadata_and_content(admin_client, api):
    response = admin_client.get(ADMIN + "add/?key=/new/")
    assert response.context["form"]["key"].value() == "/new/"
    response = admin_client.post(ADMIN + "add/", {
        "key": "/new/pic.png", "metadata": '{"name": "new"}',
        "file": SimpleUploadedFile("pic.png", png(), content_type="image/png"),
    })
    item = Item.objects.get(key="/new/pic.png")
    assert response.status_code == 302 and response.url == item_url(item)
    assert item.metadata == {"name": "new"} and item.content_type == "image/png"
    served = api.get("/new/pic.png")
    assert served.status_code == 200 and b"".join(served.streaming_content) == png()


@pytest.mark.parametrize("fields, message", [
    ({"key": "no-slash"}, "must start with"),
    ({"key": "/_admin/x"}, "reserved"),
    ({"key": "/a/_expand"}, "reserved"),
    ({"key": "/a/b", "metadata": "{oops"}, "not valid JSON"),
    ({"key": "/a/", "file": True}, "is a folder"),
    ({"key": "/a/http://example.com/x.png", "file": True}, "embeds a source URL"),
])
def test_add_item_refuses_bad_input(admin_client, fields, message):
    data = {"metadata": "{}", **fields}
    if data.pop("file", None):
        data["file"] = SimpleUploadedFile("x.png", png(), content_type="image/png")
    response = admin_client.post(ADMIN + "add/", data)
    assert response.status_code == 200 and message in response.content.decode()
    assert not Item.objects.exists()


def test_add_refuses_an_existing_key(admin_client, put):
    item = put("/a/b", {"keep": 1})
    response = admin_client.post(ADMIN + "add/", {"key": "/a/b", "metadata": "{}"})
    assert "already exists" in response.content.decode()
    assert reload(item).metadata == {"keep": 1}
