"""
Recognition in the admin, in a real browser (headless Chromium under
Selenium, as tests/admin/test_browser.py): from a folder to its duplicate
groups, to a picture's page with its tags and similar items, to the find by tag.
"""
import os
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.admin.conftest import browser  # noqa: F401 - the session's Chromium
from tests.admin.test_browser import curator  # noqa: F401 - a logged-in staff user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def screenshot(curator, name, tmp_path):
    """Saved where ISTORE_ADMIN_SCREENSHOTS says (docs/img refreshes docs/admin.md's pictures)."""
    out = Path(os.environ.get("ISTORE_ADMIN_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    curator.driver.execute_script("window.scrollTo(0, 0)")
    assert curator.driver.save_screenshot(str(out / name))


def test_duplicates_similar_items_and_tags(curator, pictures, tmp_path):  # noqa: F811
    for name in ("cat.jpg", "cat-small.jpg", "cup.jpg", "cup-bright.jpg"):
        curator.upload(f"/album/{name}", pictures[name], content_type="image/jpeg")
    call_command("compute_features", "/album/", "--no-progress")

    curator.get("/_admin/objects/item/?dir=/album/")
    curator.submit("a.istore-tool")  # "Duplicates"
    groups = curator.finds(".istore-duplicate-group")
    assert [[link.get_attribute("data-key") for link in group.find_elements(curator.By.CSS_SELECTOR, "a")]
            for group in groups] == [["/album/cat-small.jpg", "/album/cat.jpg"],
                                     ["/album/cup-bright.jpg", "/album/cup.jpg"]]
    thumbs = curator.finds(".istore-duplicate-group img.istore-thumb")
    assert len(thumbs) == 4 and all(curator.decoded_width(thumb) > 0 for thumb in thumbs), "thumbnails decode"
    screenshot(curator, "admin-duplicates.png", tmp_path)

    curator.follow(curator.finds(".istore-duplicate")[1])  # /album/cat.jpg
    assert curator.find(".istore-key").text == "/album/cat.jpg"
    similar = curator.finds(".istore-similar-item")
    assert [link.get_attribute("data-key") for link in similar][0] == "/album/cat-small.jpg", "its copy first"
    assert len(similar) == 3, "the other pictures of the folder"
    assert all(curator.decoded_width(image) > 0 for image in curator.finds(".istore-similar img.istore-thumb"))
    curator.driver.execute_script("document.querySelector('.istore-tags').scrollIntoView()")
    assert curator.driver.save_screenshot(str(tmp_path / "similar.png"))

    curator.click_link("cat")  # the top tag
    found = [row.get_attribute("data-key") for row in curator.finds("tr.istore-item-row")]
    assert found == ["/album/cat-small.jpg", "/album/cat.jpg"], found
