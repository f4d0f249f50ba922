"""
Response headers on content (issue 9 §5): stored bytes must never run script
on istore's origin.

- every response carries ``X-Content-Type-Options: nosniff`` (the browser
  believes the Content-Type, never sniffs HTML out of an "image");
- a type a browser renders as a document (HTML, XHTML, SVG, XML and any
  ``+xml``, script types) also gets ``Content-Security-Policy: sandbox`` (no
  script, unique origin) and ``Content-Disposition: attachment``;
- all of this on GET and HEAD, full and 206 responses, uploaded and fetched
  (http, file) bytes alike; ``X-Frame-Options: DENY`` on the admin, the only
  HTML istore renders itself.

Which types run script was checked in headless Chromium with nosniff (see
docs/security.md): besides the types above, ``text/xsl`` and any comma list
whose last entry is such a type (``text/plain,text/html``) do; serving.py
sandboxes them too, and the tests at the end check it.
"""
import pytest

from tests.security import conftest as media
from tests.security.conftest import payload

ACTIVE = ["text/html", "text/html; charset=utf-8", "TEXT/HTML", "application/xhtml+xml", "image/svg+xml",
          "text/xml", "application/xml", "application/rss+xml", "application/atom+xml", "application/mathml+xml",
          "application/vnd.wap.xhtml+xml", "text/javascript", "application/javascript"]
# (application/json is not here: a JSON body is metadata, not content, §3.)
PASSIVE = ["image/png", "image/jpeg", "text/plain", "application/octet-stream", "video/webm", "text/css"]


def assert_sandboxed(response):
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.get("Content-Security-Policy") == "sandbox", response.get("Content-Type")
    assert response.get("Content-Disposition") == "attachment"


@pytest.mark.parametrize("content_type", ACTIVE)
def test_active_types_are_sandboxed_attachments(api, content_type):
    key = "/headers/doc"
    assert api.upload(key, media.HTML_WITH_SCRIPT, content_type=content_type).status_code == 201
    for response in (api.get(key), api.head(key), api.get(key, HTTP_RANGE="bytes=0-9")):
        assert response.status_code in (200, 206)
        assert response["Content-Type"] == content_type
        assert_sandboxed(response)


@pytest.mark.parametrize("content_type", PASSIVE)
def test_every_content_response_has_nosniff(api, content_type):
    key = "/headers/passive"
    assert api.upload(key, b"just some bytes\n" * 10, content_type=content_type).status_code == 201
    for response in (api.get(key), api.head(key), api.get(key, HTTP_RANGE="bytes=2-5")):
        assert response.status_code in (200, 206)
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Content-Type"] == content_type


def test_passive_images_stay_inline(api):
    """Images are shown, not downloaded: no attachment, so <img> and direct views work."""
    assert api.upload("/headers/a.png", media.png(), content_type="image/png").status_code == 201
    response = api.get("/headers/a.png")
    assert "Content-Disposition" not in response
    assert response["X-Content-Type-Options"] == "nosniff"


def test_processed_results_have_nosniff_and_an_image_type(api):
    assert api.upload("/headers/b.png", media.png(), content_type="image/png").status_code == 201
    for query in ("apply=resize&w=10", "apply=grayscale&format=webp", "apply=info"):
        response = api.get("/headers/b.png", query)
        assert response.status_code == 200
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Content-Type"] in ("image/png", "image/webp", "application/json")


def test_conditional_304_and_416_carry_no_active_body(api):
    key = "/headers/page.html"
    assert api.upload(key, media.HTML_WITH_SCRIPT, content_type="text/html").status_code == 201
    etag = api.get(key)["ETag"]
    not_modified = api.get(key, HTTP_IF_NONE_MATCH=etag)
    assert not_modified.status_code == 304 and payload(not_modified) == b""
    unsatisfiable = api.get(key, HTTP_RANGE="bytes=99999-")
    assert unsatisfiable.status_code == 416
    assert unsatisfiable["Content-Type"] == "application/json"


def test_html_from_an_http_source_is_sandboxed(api, settings):
    settings.ISTORE_ALLOW_LOOPBACK_SOURCES = True
    origin = media.TinyOrigin({"/page.html": (200, "text/html; charset=utf-8", media.HTML_WITH_SCRIPT),
                               "/pic.svg": (200, "image/svg+xml", media.SVG_WITH_SCRIPT)})
    try:
        for path in ("/page.html", "/pic.svg"):
            key = f"/headers/src/{origin.url(path)}"
            assert api.post(key, {}).status_code == 201
            response = api.get(key)
            assert response.status_code == 200, payload(response)
            assert_sandboxed(response)
    finally:
        origin.close()


def test_html_from_a_file_source_is_sandboxed(api, settings, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "page.html").write_bytes(media.HTML_WITH_SCRIPT)
    settings.ISTORE_FILE_ROOTS = [str(root)]
    key = f"/headers/file/file://{root}/page.html"
    assert api.post(key, {}).status_code == 201
    response = api.get(key)
    assert response.status_code == 200, payload(response)
    assert response["Content-Type"].startswith("text/html")
    assert_sandboxed(response)


def test_api_json_and_errors_have_nosniff(api):
    api.post("/headers/item", {"a": 1})
    for response in (api.meta("/headers/item"), api.get("/headers/"), api.get("/headers/missing"),
                     api.client.get("/_schema/"), api.client.get("/_health")):
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Content-Type"] == "application/json"


def test_admin_pages_deny_framing(client, db):
    """Clickjacking: the admin (the only HTML istore renders itself) may not be framed."""
    for path in ("/_admin/login/", "/_admin/"):
        assert client.get(path)["X-Frame-Options"] == "DENY"


# ---------------------------------------------------------------- open: types that still run script


@pytest.mark.parametrize("content_type", ["text/plain,text/html", "image/png, text/html",
                                          "text/plain;charset=utf-8,image/svg+xml"])
def test_comma_separated_types_are_sandboxed(api, content_type):
    key = "/headers/comma"
    assert api.upload(key, media.HTML_WITH_SCRIPT, content_type=content_type).status_code == 201
    response = api.get(key)
    assert "text/html" in response["Content-Type"] or "svg" in response["Content-Type"]
    assert_sandboxed(response)


def test_xsl_is_sandboxed(api):
    key = "/headers/style.xsl"
    assert api.upload(key, media.HTML_WITH_SCRIPT, content_type="text/xsl").status_code == 201
    assert_sandboxed(api.get(key))
