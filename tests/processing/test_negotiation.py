"""format=auto: the format chosen from Accept, and one cache key per choice."""
import pytest
from django.http import QueryDict

from processing.negotiation import Negotiated, negotiate
from processing.operations import parse_operation

CHROME = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
SAFARI_16 = "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,image/png,*/*;q=0.5"
OLD_FIREFOX = "image/webp,*/*"
CURL = "*/*"


@pytest.mark.parametrize("accept,still,animated", [
    (CHROME, "AVIF", "WEBP"), (SAFARI_16, "AVIF", "WEBP"), (OLD_FIREFOX, "WEBP", "WEBP"),
    ("image/avif", "AVIF", None), (CURL, None, None), ("image/*", None, None), ("", None, None),
    (None, None, None), ("IMAGE/WEBP", "WEBP", "WEBP"), ("image/avif;q=0, image/webp", "WEBP", "WEBP"),
    ("image/avif;q=0.1", "AVIF", None), ("image/webp;q=0.0", None, None), ("image/webp;q=x", "WEBP", "WEBP"),
    (" image/avif ; q=1 ,,image/png", "AVIF", None), ("image/avif-like", None, None),
])
def test_negotiate(accept, still, animated):
    assert negotiate(accept) == Negotiated(still, animated), f"Accept: {accept!r}"


def op(query, accept=None, default_format=None):
    return parse_operation(QueryDict(query), accept=accept, default_format=default_format)


def test_auto_picks_the_format_and_says_so():
    chosen = op("apply=resize&w=10&format=auto", CHROME)
    assert (chosen.format, chosen.animated_format, chosen.negotiated) == ("AVIF", "WEBP", True)
    assert op("apply=resize&w=10&format=AUTO", CURL).format is None, "nothing accepted: the source's format"
    assert not op("apply=resize&w=10&format=webp", CHROME).negotiated, "an explicit format does not vary"


def test_one_cache_key_per_chosen_format():
    keys = {accept: op("apply=resize&w=10&format=auto", accept).cache_key
            for accept in (CHROME, SAFARI_16, OLD_FIREFOX, "image/avif", CURL, "")}
    assert keys[CHROME] == keys[SAFARI_16], "the same choice is the same cached result"
    assert keys[CURL] == keys[""] == op("apply=resize&w=10").cache_key
    assert keys[OLD_FIREFOX] == op("apply=resize&w=10&format=webp").cache_key
    assert len({keys[CHROME], keys["image/avif"], keys[OLD_FIREFOX], keys[CURL]}) == 4


def test_auto_format_default_applies_without_format():
    assert op("apply=flipH", CHROME, default_format="auto").format == "AVIF"
    assert op("apply=flipH&format=png", CHROME, default_format="auto").format == "PNG"
    assert not op("apply=info", CHROME, default_format="auto").negotiated, "info has no output format"
    assert op("apply=frame&sec=1", OLD_FIREFOX, default_format="auto").format == "WEBP"


@pytest.mark.parametrize("a,b", [("apply=flipH", "apply=flipH&frame=0"), ("apply=flipH&frame=1", "apply=flipH&frame=2")])
def test_frame_is_part_of_the_cache_key(a, b):
    assert op(a).cache_key != op(b).cache_key
    assert op("apply=flipH&frame=01").cache_key == op("apply=flipH&frame=1").cache_key


# ------------------------------------------------------------------ over HTTP

import io  # noqa: E402

from PIL import Image  # noqa: E402

from tests.objects.conftest import content  # noqa: E402

from .conftest import encode_animation  # noqa: E402

KEY = "/auto/a.png"


@pytest.fixture
def image(api):
    out = io.BytesIO()
    Image.new("RGB", (40, 20), (10, 200, 30)).save(out, "PNG")
    assert api.upload(KEY, out.getvalue(), content_type="image/png").status_code == 201
    return KEY


def computed(client):
    text = client.get("/_metrics").content.decode()
    for line in text.splitlines():
        if line.startswith('istore_processing_seconds_count{operation="resize"}'):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.parametrize("accept,content_type", [
    (CHROME, "image/avif"), (OLD_FIREFOX, "image/webp"), (CURL, "image/png"), (None, "image/png"),
])
def test_auto_answers_by_accept_with_vary(api, image, accept, content_type):
    extra = {} if accept is None else {"HTTP_ACCEPT": accept}
    response = api.get(image, "apply=resize&w=10&format=auto", **extra)
    assert response.status_code == 200
    assert response["Content-Type"] == content_type, f"Accept: {accept}"
    assert response["Vary"] == "Accept", "a negotiated answer says what it varies on"
    assert Image.open(io.BytesIO(content(response))).format == content_type.split("/")[1].upper()


def test_one_cached_result_per_chosen_format(api, image, client):
    query = "apply=resize&w=10&format=auto"
    before = computed(client)
    etags = {}
    for accept in (CHROME, SAFARI_16, CHROME, OLD_FIREFOX, CURL, OLD_FIREFOX):
        etags.setdefault(accept, set()).add(api.get(image, query, HTTP_ACCEPT=accept)["ETag"])
    assert computed(client) - before == 3, "AVIF, WebP and PNG are each computed once"
    assert etags[CHROME] == etags[SAFARI_16], "the same format is the same result"
    assert len(set().union(*etags.values())) == 3, "each format has its own ETag"


def test_not_modified_keeps_vary(api, image):
    first = api.get(image, "apply=resize&w=10&format=auto", HTTP_ACCEPT=OLD_FIREFOX)
    again = api.get(image, "apply=resize&w=10&format=auto", HTTP_ACCEPT=OLD_FIREFOX, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304 and again["Vary"] == "Accept"
    other = api.get(image, "apply=resize&w=10&format=auto", HTTP_ACCEPT=CURL, HTTP_IF_NONE_MATCH=first["ETag"])
    assert other.status_code == 200, "a WebP's ETag does not match the PNG another client is given"


def test_explicit_format_does_not_vary(api, image):
    response = api.get(image, "apply=resize&w=10&format=webp", HTTP_ACCEPT=CHROME)
    assert response["Content-Type"] == "image/webp" and not response.has_header("Vary")


def test_auto_format_setting_makes_auto_the_default(api, image, settings):
    settings.ISTORE_AUTO_FORMAT = True
    negotiated = api.get(image, "apply=resize&w=10", HTTP_ACCEPT=OLD_FIREFOX)
    assert negotiated["Content-Type"] == "image/webp" and negotiated["Vary"] == "Accept"
    chosen = api.get(image, "apply=resize&w=10&format=png", HTTP_ACCEPT=OLD_FIREFOX)
    assert chosen["Content-Type"] == "image/png" and not chosen.has_header("Vary")
    plain = api.get(image, "", HTTP_ACCEPT=OLD_FIREFOX)
    assert plain["Content-Type"] == "image/png" and not plain.has_header("Vary"), "unprocessed reads are as stored"


def test_animated_source_stays_animated(api):
    assert api.upload("/auto/a.gif", encode_animation("GIF", loop=0), content_type="image/gif").status_code == 201
    webp = api.get("/auto/a.gif", "apply=flipH&format=auto", HTTP_ACCEPT=CHROME)
    out = Image.open(io.BytesIO(content(webp)))
    assert out.format == "WEBP" and out.n_frames == 5, "AVIF would lose the frames: WebP is chosen"
    gif = api.get("/auto/a.gif", "apply=flipH&format=auto", HTTP_ACCEPT="image/avif,*/*")
    assert Image.open(io.BytesIO(content(gif))).format == "GIF"
    still = api.get("/auto/a.gif", "apply=flipH&format=auto&frame=1", HTTP_ACCEPT=CHROME)
    assert still["Content-Type"] == "image/avif", "one frame is a still"


def test_self_source_negotiates_with_the_request(api, image):
    key = "/auto/self://a.png?apply=resize&w=10&format=auto"
    assert api.post(key, {}).status_code == 201
    response = api.get(key, "", HTTP_ACCEPT=OLD_FIREFOX)
    assert response["Content-Type"] == "image/webp" and response["Vary"] == "Accept"
    assert api.get(key, "", HTTP_ACCEPT=CURL)["Content-Type"] == "image/png"
