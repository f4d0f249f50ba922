"""The admin's folder browser: folders, breadcrumbs, counts, paging, find, previews."""
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from objects.admin import browse, previews

from .conftest import ADMIN, folder_url, item_url

pytestmark = pytest.mark.django_db


def rows(response):
    assert response.status_code == 200, response.content[:500]
    return [(row.name, str(row.count) if row.is_folder else row.item.pk) for row in response.context["rows"]]


def names(response):
    return [name for name, _ in rows(response)]


def test_root_shows_top_folders_with_item_counts(admin_client, put):
    put("/photos/a.jpg")
    put("/photos/2024/b.jpg")
    put("/photos/2024/c.jpg")
    put("/docs/readme")
    assert rows(admin_client.get(folder_url("/"))) == [("docs/", "1"), ("photos/", "3")]


def test_folder_lists_own_item_first_then_folders_and_items_in_key_order(admin_client, put):
    own = put("/a/", {"name": "folder a"})
    x = put("/a/x.jpg")
    put("/a/b/c/deep.jpg")
    z = put("/a/z")
    response = admin_client.get(folder_url("/a/"))
    assert rows(response) == [("/a/", own.pk), ("b/", "1"), ("x.jpg", x.pk), ("z", z.pk)]
    assert "this folder's own item" in response.content.decode()


def test_key_with_embedded_source_is_an_item_of_its_directory(admin_client, put):
    item = put("/abc/http://example.com/foo/bar.jpg")
    assert rows(admin_client.get(folder_url("/abc/"))) == [("http://example.com/foo/bar.jpg", item.pk)]


def test_breadcrumbs_walk_up_to_the_root(admin_client, put):
    put("/a/b/c/item")
    response = admin_client.get(folder_url("/a/b/c/"))
    crumbs = response.context["crumbs"]
    assert [label for label, _ in crumbs] == ["/", "a/", "b/", "c/"]
    assert crumbs[2][1] == folder_url("/a/b/")
    assert response.context["parent_url"] == folder_url("/a/b/")
    assert browse.breadcrumbs("/a//b/") == [("/", "/"), ("a/", "/a/"), ("/", "/a//"), ("b/", "/a//b/")]


def test_dir_parameter_is_normalised_and_bad_ones_redirect(admin_client, put):
    put("/a/b/x")
    assert names(admin_client.get(ADMIN, {"dir": "a/b"})) == ["x"]
    response = admin_client.get(ADMIN, {"dir": "/bad\x01/"})
    assert response.status_code == 302 and response.url == folder_url("/")


def test_counts_stop_at_the_cap(admin_client, put, monkeypatch):
    monkeypatch.setattr(browse, "COUNT_CAP", 5)
    for i in range(7):
        put(f"/many/{i}")
    for i in range(3):
        put(f"/few/{i}")
    response = admin_client.get(folder_url("/"))
    assert rows(response) == [("few/", "3"), ("many/", "5+")]
    assert "5+ items" in response.content.decode()


def test_paging_walks_every_entry_once(admin_client, put, monkeypatch):
    monkeypatch.setattr(browse, "PAGE_SIZE", 3)
    expected = []
    for name in ["a", "b/", "c", "d/", "e", "f", "g/", "h"]:
        key = f"/p/{name}" + ("deep" if name.endswith("/") else "")
        put(key)
        expected.append(name)
    seen, url, pages = [], folder_url("/p/"), 0
    while url:
        response = admin_client.get(url)
        seen += names(response)
        pages += 1
        if pages > 1:
            assert response.context["first_url"] == folder_url("/p/")
        url = response.context["next_url"]
    assert seen == expected and pages == 3


def test_folder_page_cost_does_not_grow_with_the_store(admin_client, put):
    for i in range(5):
        put(f"/small/{i}.jpg")
        put(f"/small/sub{i}/x.jpg")

    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(folder_url("/small/")).status_code == 200
        return [query["sql"] for query in captured.captured_queries]

    before = queries()
    for i in range(300):
        put(f"/small/sub0/more{i}.jpg")
        put(f"/elsewhere/{i}")
    after = queries()
    assert len(after) == len(before)
    for sql in after:
        assert "LIKE" not in sql.upper(), sql
        if "COUNT(" in sql.upper():
            assert "LIMIT" in sql.upper(), f"unbounded count: {sql}"


def test_find_by_relative_and_absolute_key_prefix(admin_client, put):
    for key in ["/photos/cat1.jpg", "/photos/cat2.jpg", "/photos/dog.jpg", "/photos/sub/cat3.jpg",
                "/other/cat"]:
        put(key)
    assert names(admin_client.get(folder_url("/photos/", q="cat"))) == ["cat1.jpg", "cat2.jpg"]
    assert names(admin_client.get(folder_url("/photos/", q="/photos/sub/c"))) == ["sub/cat3.jpg"]
    assert names(admin_client.get(folder_url("/", q="/o"))) == ["other/cat"]


def test_find_by_metadata_field_within_the_folder(admin_client, put):
    put("/v/a", {"name": "my video"})
    put("/v/deeper/b", {"name": "my video", "n": 5})
    put("/v/c", {"name": "other"})
    put("/w/d", {"name": "my video"})
    put("/v/e", {"n": "5"})
    response = admin_client.get(folder_url("/v/", q="name=my video"))
    assert names(response) == ["a", "deeper/b"]
    assert "whose metadata field" in response.context["find_description"]
    assert names(admin_client.get(folder_url("/", q="name=my video"))) == ["v/a", "v/deeper/b", "w/d"]
    # A value that parses as JSON matches the parsed value and the text.
    assert names(admin_client.get(folder_url("/v/", q="n=5"))) == ["deeper/b", "e"]
    assert names(admin_client.get(folder_url("/v/", q='name="other"'))) == ["c"]


def test_find_results_page_by_key(admin_client, put, monkeypatch):
    monkeypatch.setattr(browse, "PAGE_SIZE", 2)
    for i in range(5):
        put(f"/f/{i}", {"tag": "x"})
    first = admin_client.get(folder_url("/f/", q="tag=x"))
    assert names(first) == ["0", "1"]
    second = admin_client.get(first.context["next_url"])
    assert names(second) == ["2", "3"]
    assert names(admin_client.get(second.context["next_url"])) == ["4"]


def test_bad_find_shows_a_message_not_an_error(admin_client, put):
    put("/a/b")
    response = admin_client.get(folder_url("/a/", q="=value"))
    assert response.status_code == 200
    assert "Name the metadata field" in response.context["find_error"]


def test_thumbnails_use_fit_urls_lazy_with_placeholder(admin_client, put):
    image = put("/pics/a?b%c.jpg")
    put("/pics/notes.txt")
    page = admin_client.get(folder_url("/pics/")).content.decode()
    assert 'src="/pics/a%3Fb%25c.jpg?apply=fit&amp;w=160&amp;h=160"' in page
    assert 'loading="lazy"' in page and "no-preview.svg" in page and "onerror=" in page
    assert item_url(image) in page
    # Only image-like items get a thumbnail.
    assert page.count('class="istore-thumb"') == 1


def test_key_urls_are_exact_paths():
    assert previews.key_url("/a b/ü?x#y%z") == "/a%20b/%C3%BC%3Fx%23y%25z"
    # A leading "//" must not become a scheme-relative URL to another host.
    assert previews.key_url("//evil.example/x") == "/%2Fevil.example/x"
    assert previews.thumb_url("/a.jpg") == "/a.jpg?apply=fit&w=160&h=160"


def test_kinds():
    from objects.models import Item

    def item(key, **fields):
        obj = Item(metadata=fields.pop("metadata", {}), **fields)
        obj.set_key(key)
        return obj

    assert previews.kind(item("/a/")) == "folder"
    assert previews.kind(item("/a/b.JPG")) == "image"
    assert previews.kind(item("/a/http://example.com/v.webm?x=1")) == "video"
    assert previews.kind(item("/a/blob", content_name="c", content_type="image/png")) == "image"
    assert previews.kind(item("/a/blob.jpg", content_name="c", content_type="text/plain")) == "data"
    assert previews.kind(item("/s/self:///v.webm?apply=frame&sec=1")) == "frame"


def test_video_shows_its_frame_strip_and_frames_link_back(admin_client, put, frames):
    video = put("/v/clip.webm", {"name": "clip"})
    registered = frames("/v/clip.webm", 12)
    # Another video's frames, and a key that looks like a frame of this one
    # but says otherwise in its metadata, stay out of the strip.
    frames("/v/other.webm", 2)
    put("/v/self:///v/clip.webm?apply=frame&sec=99", {"video": "/v/else.webm", "timestamp": "00:01:39"})
    response = admin_client.get(item_url(video))
    strip = response.context["frames"]
    assert [row.key for row in strip] == [frame.key for frame in registered]
    assert all(row.thumb.endswith("?apply=fit&w=160&h=160") and "%3Fapply%3Dframe" not in row.thumb
               for row in strip)
    assert "%3Fapply=frame&sec=00?apply=fit" in strip[0].thumb
    frame_page = admin_client.get(item_url(registered[3]))
    assert frame_page.context["video"] == video
    assert item_url(video) in frame_page.content.decode()
    # The folder row of the video shows its first frame as a poster.
    folder_rows = admin_client.get(folder_url("/v/")).context["rows"]
    video_row = [row for row in folder_rows if row.key == video.key][0]
    assert video_row.thumb == strip[0].thumb


def test_frame_strip_is_bounded(admin_client, put, frames, monkeypatch):
    monkeypatch.setattr(browse, "FRAME_LIMIT", 4)
    video = put("/v/long.webm")
    frames("/v/long.webm", 6)
    response = admin_client.get(item_url(video))
    assert len(response.context["frames"]) == 4
    more = response.context["more_frames_url"]
    assert more and names(admin_client.get(more))[-1].endswith("sec=5")


def test_login_required_and_permissions(client, django_user_model, put):
    item = put("/a/b")
    response = client.get(folder_url("/"))
    assert response.status_code == 302 and "/_admin/login/" in response.url
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get(folder_url("/")).status_code == 403
    assert client.get(item_url(item)).status_code == 403
    from django.contrib.auth.models import Permission

    staff.user_permissions.add(Permission.objects.get(codename="view_item"))
    assert client.get(folder_url("/")).status_code == 200
    page = client.get(item_url(item))
    assert page.status_code == 200 and "Save metadata" not in page.content.decode()
    assert client.post(item_url(item), {"metadata": "{}", "mode": "replace"}).status_code == 403


def test_admin_index_links_to_folders(admin_client):
    page = admin_client.get("/_admin/").content.decode()
    assert 'href="/_admin/objects/item/"' in page
    assert re.search(r"Tokens", page)
