"""
The admin in a real browser: Selenium drives headless Chromium against the
live server, as a curator would, and checks what the API sees afterwards.

Skipped with an install hint when no Chromium is on the machine (.ci/run
installs Debian's chromium and chromium-driver). With
ISTORE_ADMIN_SCREENSHOTS=docs/img, test_screenshots refreshes the README's
pictures.
"""
import json
import os
from pathlib import Path

import pytest
import requests
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from objects import keys, writing
from objects.admin import previews
from objects.models import Item

from tests.servers import LocalServer

from .conftest import png, register_frames, webm

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WAIT = 20


class Curator:
    """A logged-in admin user in the browser, and a token for checking the API."""

    def __init__(self, driver, base_url, token):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver, self.base, self.token, self.By = driver, base_url, token, By
        self.wait = WebDriverWait(driver, WAIT)

    # --- the API, as a client of istore sees it ---------------------------
    def api(self, method, key, **kwargs):
        headers = {"Authorization": f"Token {self.token}", **kwargs.pop("headers", {})}
        url = self.base + previews.key_url(key)
        return requests.request(method, url, headers=headers, timeout=30, **kwargs)

    def upload(self, key, data, metadata=None, content_type="image/png"):
        response = self.api("PUT", key, data=data, headers={"Content-Type": content_type})
        assert response.status_code in (200, 201), response.text
        if metadata:
            self.api("POST", key, data={"metadata": json.dumps(metadata)}).raise_for_status()

    def expand(self, video_key, seconds):
        """Slice a video with the API's _expand, or register its frames the same way
        while that verb is not implemented yet."""
        directory = keys.dir_of(video_key)
        response = self.api("POST", directory + "_expand", data=json.dumps({"video": video_key}))
        if response.status_code != 201:
            assert response.status_code == 501, response.text
            register_frames(video_key, seconds)

    def metadata(self, key):
        response = self.api("GET", key, params={"meta": "1"})
        response.raise_for_status()
        return response.json()["metadata"]

    # --- the browser -------------------------------------------------------
    def get(self, path):
        self.driver.get(self.base + path)

    def find(self, css):
        return self.wait.until(lambda d: d.find_element(self.By.CSS_SELECTOR, css))

    def finds(self, css):
        return self.driver.find_elements(self.By.CSS_SELECTOR, css)

    def click_link(self, text):
        self.follow(self.wait.until(lambda d: d.find_element(self.By.LINK_TEXT, text)))

    def follow(self, element):
        """Click ``element`` and wait for the next page, so no look-up sees the old one."""
        from selenium.webdriver.support import expected_conditions

        page = self.driver.find_element(self.By.TAG_NAME, "html")
        # A click through the DOM, not at the element's position: thumbnails
        # still loading move the rows, and a positional click can land beside
        # the link (seen once in CI: no navigation, a 20 s timeout).
        self.driver.execute_script("arguments[0].click()", element)
        self.wait.until(expected_conditions.staleness_of(page))

    def log_in(self, username, password):
        self.get("/_admin/login/?next=/_admin/")
        self.find("#id_username").send_keys(username)
        self.find("#id_password").send_keys(password)
        self.find("input[type=submit]").click()
        self.wait.until(lambda d: "Site administration" in d.page_source or "Namespace" in d.page_source)

    def decoded_width(self, image):
        """Wait until ``image`` has loaded and return its natural width (0 if broken)."""
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", image)
        self.wait.until(lambda d: d.execute_script("return arguments[0].complete", image))
        return self.driver.execute_script("return arguments[0].naturalWidth", image)

    def submit(self, css):
        self.follow(self.find(css))

    def message(self):
        return self.find("ul.messagelist").text


@pytest.fixture
def curator(browser, live_server, db):
    user = get_user_model().objects.create_superuser("curator", "curator@example.com", "curator-pw")
    token = Token.objects.create(user=user)
    person = Curator(browser, live_server.url, token.key)
    browser.delete_all_cookies()
    person.log_in("curator", "curator-pw")
    return person


def test_walk_folders_preview_and_edit_metadata(curator):
    curator.upload("/photos/2024/summer/beach.png", png((30, 110, 200)), {"name": "beach", "tags": ["sea"]})
    curator.upload("/photos/2024/summer/dune.png", png((210, 170, 60)))
    curator.upload("/photos/2024/winter/snow.png", png((220, 220, 235)))

    # From the admin home to an item, without typing a URL.
    curator.click_link("Items")
    curator.click_link("photos/")
    curator.click_link("2024/")
    curator.find(".istore-folder-count")
    assert [cell.text for cell in curator.finds(".istore-folder-count")] == ["2 items", "1 item"]
    curator.click_link("summer/")
    assert curator.find("h1.istore-path").text == "/photos/2024/summer/"
    assert [crumb.text for crumb in curator.finds(".istore-crumb")] == ["/", "photos/", "2024/", "summer/"]
    thumbs = curator.finds("img.istore-thumb")
    assert len(thumbs) == 2 and all(thumb.get_attribute("loading") == "lazy" for thumb in thumbs)
    assert all(curator.decoded_width(thumb) > 0 for thumb in thumbs)
    assert "apply=fit&w=160&h=160" in thumbs[0].get_attribute("src")
    curator.click_link("beach.png")

    # The item page: its preview is a processed ?apply=fit image that decoded.
    preview = curator.find("#istore-preview")
    assert "apply=fit" in preview.get_attribute("src")
    assert 0 < curator.decoded_width(preview) <= previews.PREVIEW_SIZE
    assert "istore-broken" not in preview.get_attribute("class")
    assert curator.find(".istore-key").text == "/photos/2024/summer/beach.png"

    # Replace, then merge, and the API sees each.
    editor = curator.find("textarea.istore-json")
    editor.clear()
    editor.send_keys('{"name": "beach at noon", "tags": ["sea", "sand"]}')
    curator.submit("#istore-save")
    assert "replaced" in curator.message()
    assert curator.metadata("/photos/2024/summer/beach.png") == {"name": "beach at noon",
                                                                 "tags": ["sea", "sand"]}
    editor = curator.find("textarea.istore-json")
    editor.clear()
    editor.send_keys('{"tags": null, "rating": 5}')
    curator.find("input[name=mode][value=merge]").click()
    curator.submit("#istore-save")
    assert "merged" in curator.message()
    assert curator.metadata("/photos/2024/summer/beach.png") == {"name": "beach at noon", "rating": 5}


def test_invalid_json_is_refused_in_the_browser_and_by_the_server(curator):
    curator.upload("/photos/cat.png", png(), {"name": "cat"})
    item_id = Item.objects.get(key="/photos/cat.png").pk
    curator.get(f"/_admin/objects/item/{item_id}/change/")
    editor = curator.find("textarea.istore-json")
    editor.clear()
    editor.send_keys('{"name": ')
    status = curator.find(".istore-json-status")
    assert status.text.startswith("Invalid JSON")
    curator.find("#istore-save").click()
    # The page did not submit: the same editor still holds the broken text.
    assert "Not saved" in curator.find(".istore-json-status").text
    assert editor.get_attribute("value") == '{"name": '
    assert curator.metadata("/photos/cat.png") == {"name": "cat"}
    # Past the browser's check (form.submit() fires no submit event), the server refuses.
    curator.driver.execute_script("document.getElementById('istore-metadata-form').submit()")
    error = curator.find(".istore-form-error")
    assert "not valid JSON" in error.text and "Nothing was saved" in error.text
    assert curator.metadata("/photos/cat.png") == {"name": "cat"}


def test_failing_source_shows_a_placeholder_and_the_page_works(curator):
    curator.upload("/mixed/ok.png", png((90, 160, 90)))
    writing.write("/mixed/http://127.0.0.1:9/gone.jpg", {"name": "broken source"})
    curator.get("/_admin/objects/item/?dir=/mixed/")
    rows = curator.finds("tr.istore-item-row")
    assert len(rows) == 2
    broken = rows[0].find_element(curator.By.CSS_SELECTOR, "img")
    curator.wait.until(lambda d: "istore-broken" in broken.get_attribute("class"))
    assert broken.get_attribute("src").endswith("no-preview.svg")
    assert curator.decoded_width(broken) > 0  # the placeholder itself, not a broken-image icon
    curator.wait.until(lambda d: "source_forbidden" in (broken.get_attribute("title") or ""))
    ok = rows[1].find_element(curator.By.CSS_SELECTOR, "img")
    assert curator.decoded_width(ok) > 0 and "istore-broken" not in ok.get_attribute("class")


def test_preview_of_a_source_whose_origin_went_down_says_why(curator, settings):
    """A source fetched once, then unreachable: the placeholder names the status and the source's error."""
    settings.ISTORE_ALLOW_LOOPBACK_SOURCES = True
    image = png((90, 90, 200))
    down = []

    def answer(request):
        if down:  # hang up without a word, on new and kept-alive connections alike
            request.close_connection = True
            return
        request.send_response(200)
        request.send_header("Content-Type", "image/png")
        request.send_header("Content-Length", str(len(image)))
        request.send_header("Cache-Control", "max-age=0, must-revalidate")  # never served stale
        request.end_headers()
        request.wfile.write(image)

    origin = LocalServer(answer)
    try:
        key = f"/down/{origin.url('/photo.png')}"
        writing.write(key, {"name": "origin goes down"})
        assert curator.api("GET", key).status_code == 200, "the source is fetched (and cached) while it is up"
        down.append(True)

        curator.get("/_admin/objects/item/?dir=/down/")
        thumb = curator.find("tr.istore-item-row img")
        curator.wait.until(lambda d: "502" in (thumb.get_attribute("title") or ""))
        assert "source_error" in thumb.get_attribute("title"), thumb.get_attribute("title")
        curator.get(f"/_admin/objects/item/{Item.objects.get(key=key).pk}/change/")
        reason = curator.find("#istore-preview-reason")
        curator.wait.until(lambda d: reason.is_displayed())
        assert "502" in reason.text and origin.url("/photo.png") in reason.text, reason.text
    finally:
        origin.close()


def test_video_shows_its_frame_strip(curator):
    curator.upload("/videos/clip.webm", webm(4), {"name": "test pattern"}, content_type="video/webm")
    curator.expand("/videos/clip.webm", 4)
    curator.get("/_admin/objects/item/?dir=/videos/")
    curator.click_link("clip.webm")
    strip = curator.finds(".istore-strip img.istore-thumb")
    assert len(strip) == 4
    assert all(curator.decoded_width(image) > 0 for image in strip)
    assert not any("istore-broken" in image.get_attribute("class") for image in strip)
    # A frame's page leads back to its video.
    curator.follow(curator.finds(".istore-frame")[2])
    assert "00:00:02" in curator.find(".istore-facts").text
    curator.submit("a.istore-video-link")
    assert curator.find(".istore-key").text == "/videos/clip.webm"


def test_delete_a_folder_after_confirming_the_count(curator):
    for name in ("a", "b", "sub/c"):
        curator.upload(f"/trash/{name}.png", png())
    curator.upload("/keep/d.png", png())
    curator.get("/_admin/objects/item/?dir=/trash/")
    curator.submit("a.istore-delete-folder")
    assert "This deletes 3 items" in curator.find(".istore-confirm-count").text
    curator.submit("input.istore-confirm-delete")
    assert "Deleted 3 items under /trash/." in curator.message()
    assert curator.api("GET", "/trash/").json() == []
    assert [entry["_filepath"] for entry in curator.api("GET", "/").json()] == ["/keep/d.png"]


def test_screenshots(curator, tmp_path):
    """Folder, item and video pages as the README shows them (ISTORE_ADMIN_SCREENSHOTS=docs/img)."""
    out = Path(os.environ.get("ISTORE_ADMIN_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    curator.driver.set_window_size(1360, 1100)
    writing.write("/photos/2024/", {"name": "Photos of 2024", "owner": "curator"})
    colours = [(40, 110, 190), (200, 90, 50), (70, 160, 90), (180, 60, 140), (230, 180, 40), (60, 60, 70)]
    for i, colour in enumerate(colours):
        curator.upload(f"/photos/2024/img_{i:03d}.png", png(colour, (480, 320)),
                       {"name": f"Picture {i}", "camera": "X100", "tags": ["2024", "holiday"][: 1 + i % 2]})
    for month, count in (("01-january", 12), ("02-february", 1500), ("03-march", 7)):
        writing.upsert_many((f"/photos/2024/{month}/{i:04d}.jpg", {"month": month}) for i in range(count))
    writing.write("/photos/2024/http://127.0.0.1:9/offline.jpg", {"name": "an unreachable source"})
    curator.upload("/photos/2024/clip.webm", webm(6), {"name": "test pattern"}, content_type="video/webm")
    curator.expand("/photos/2024/clip.webm", 6)

    def shoot(name, *images):
        for image in images:
            curator.decoded_width(image)
        curator.driver.execute_script("window.scrollTo(0, 0)")
        assert curator.driver.save_screenshot(str(out / name))

    curator.get("/_admin/objects/item/?dir=/photos/2024/")
    shoot("admin-folder.png", *curator.finds("img.istore-thumb"))
    curator.click_link("img_000.png")
    shoot("admin-item.png", curator.find("#istore-preview"))
    curator.get("/_admin/objects/item/?dir=/photos/2024/")
    curator.click_link("clip.webm")
    shoot("admin-video.png", *curator.finds(".istore-strip img"))
    curator.driver.set_window_size(1360, 1000)
