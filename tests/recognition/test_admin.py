"""Recognition in the admin (recognition/admin.py): a folder's duplicates, an item's tags and similar items."""
from urllib.parse import urlencode

import pytest
from django.core.management import call_command

from objects.models import Item
from tests.admin.conftest import folder_url, item_url

DUPLICATES = "/_admin/recognition/features/duplicates/"


def duplicates_page(client, **params):
    response = client.get(DUPLICATES + "?" + urlencode(params))
    assert response.status_code == 200, response.content[:300]
    return response


def group_keys(response):
    return [[row.key for row in group["rows"]] for group in response.context["groups"]]


def item_page(client, key):
    response = client.get(item_url(Item.objects.get(key=key)))
    assert response.status_code == 200, response.content[:300]
    return response


def panel(response):
    panels = [p for p in response.context["panels"] if p["template"] == "admin/recognition/item_panel.html"]
    assert len(panels) == 1, "a picture's page has one recognition panel"
    return panels[0]


def test_a_folder_links_to_its_duplicates(admin_client, album):
    page = admin_client.get(folder_url("/album/")).content.decode()
    assert f'href="{DUPLICATES}?dir=%2Falbum%2F"' in page, "the folder page links to its duplicates"


def test_duplicates_page_shows_the_groups_the_api_finds(admin_client, api, album):
    expected = api.verb("/album/", "_duplicates", {}).json()["groups"]
    response = duplicates_page(admin_client, dir="/album/")
    assert group_keys(response) == expected
    page = response.content.decode()
    assert page.count('class="istore-thumb"') == sum(map(len, expected)), "one thumbnail per item"
    assert "/album/cat-mirror.jpg?apply=fit&amp;w=160&amp;h=160" in page


def test_duplicates_page_takes_the_feature_and_threshold(admin_client, album):
    response = duplicates_page(admin_client, dir="/album/", by="_embedding", max_distance="0")
    assert group_keys(response) == [], "at distance 0 no two different files are duplicates"
    assert response.context["by"] == "_embedding"


@pytest.mark.parametrize("params, message", [
    ({"by": "colour"}, "must be one of"),
    ({"max_distance": "far"}, "must be a number from 0 to 1"),
    ({"max_distance": "2"}, "must be a number from 0 to 1"),
])
def test_duplicates_page_says_what_is_wrong(admin_client, album, params, message):
    response = duplicates_page(admin_client, dir="/album/", **params)
    assert message in response.context["error"], response.context["error"]


def test_duplicates_page_needs_a_staff_login(client, album):
    response = client.get(DUPLICATES + "?dir=/album/")
    assert response.status_code == 302 and "/login/" in response.url


def test_item_page_shows_labels_and_the_five_most_similar(admin_client, album):
    shown = panel(item_page(admin_client, "/album/cat.jpg"))
    assert shown["labels"][0]["label"] == "cat" and shown["labels"][0]["is_tag"]
    similar = [row.key for row, _ in shown["similar"]]
    assert len(similar) == 4 and "/album/cat.jpg" not in similar, "the other four pictures, not itself"
    assert similar[:2] in (["/album/cat-small.jpg", "/album/cat-mirror.jpg"],
                           ["/album/cat-mirror.jpg", "/album/cat-small.jpg"]), f"copies first: {similar}"


def test_item_page_shows_at_most_five_similar(admin_client, api, album, pictures):
    for name, data in pictures.items():
        api.upload(f"/album/more/{name}", data, content_type="image/jpeg")
    call_command("compute_features", "/album/", "--no-progress")
    assert len(panel(item_page(admin_client, "/album/cup.jpg"))["similar"]) == 5


def test_item_page_of_a_picture_without_features_says_so(admin_client, api, pictures):
    api.upload("/new/cat.jpg", pictures["cat.jpg"], content_type="image/jpeg")
    page = item_page(admin_client, "/new/cat.jpg").content.decode()
    assert "Features not computed yet" in page


def test_item_page_of_other_content_has_no_panel(admin_client, api):
    api.upload("/docs/a.txt", b"words", content_type="text/plain")
    assert item_page(admin_client, "/docs/a.txt").context["panels"] == []


def test_find_by_label(admin_client, album):
    response = admin_client.get(folder_url("/album/", q="_labels=cat"))
    keys = [row.key for row in response.context["rows"]]
    assert keys == ["/album/cat-mirror.jpg", "/album/cat-small.jpg", "/album/cat.jpg"], keys
    assert response.context["find_description"] == "items under /album/ whose _labels has 'cat'"


def test_find_by_label_ignores_case_and_stays_in_the_folder(admin_client, api, album, pictures):
    api.upload("/elsewhere/cup.jpg", pictures["cup.jpg"], content_type="image/jpeg")
    call_command("compute_features", "/elsewhere/", "--no-progress")
    response = admin_client.get(folder_url("/album/", q="_labels=Espresso"))
    assert [row.key for row in response.context["rows"]] == ["/album/cup-bright.jpg", "/album/cup.jpg"]


def test_a_tag_links_to_its_find(admin_client, album):
    page = item_page(admin_client, "/album/cat.jpg").content.decode()
    assert 'q=_labels%3Dcat' in page, "the cat tag links to the folder's find"


@pytest.mark.django_db(transaction=True)  # the job worker's threads see the data
def test_a_large_folder_is_compared_by_a_job_the_page_follows(admin_client, album, settings):
    settings.ISTORE_JOBS_HEARTBEAT = 0.05
    settings.ISTORE_JOBS_SYNC_SECONDS = 0  # any folder is "too large" for a request
    started = admin_client.get(DUPLICATES + "?dir=/album/")
    assert started.status_code == 302 and "job=" in started.url, "the page starts a _duplicates job"
    waiting = admin_client.get(started.url)
    assert waiting.context["running"] and b'http-equiv="refresh"' in waiting.content, "it reloads while the job runs"
    call_command("jobs_worker", "--batch", verbosity=0)
    done = admin_client.get(started.url)
    assert not done.context["running"] and done.context["error"] is None, done.context["error"]
    assert group_keys(done) == [["/album/cat-mirror.jpg", "/album/cat-small.jpg", "/album/cat.jpg"],
                                ["/album/cup-bright.jpg", "/album/cup.jpg"]]
