"""Stale if error: a cached http source (and its derivatives) stands in for an origin that went down,
timed out or answered 5xx after a first successful fetch, within the window and the origin's rules."""
import io
import time
from email.utils import formatdate

import pytest
from PIL import Image

from tests.conftest import body
from tests.objects.conftest import content

STALE = "istore; hit; detail=stale"


def png():
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(out, "PNG")
    return out.getvalue()


PAYLOAD = png()


def stale_by(seconds, cache_control="max-age=60"):
    """Headers of a response made ``60 + seconds`` ago with max-age=60: ``seconds`` stale now."""
    return {"Content-Type": "image/png", "Cache-Control": cache_control,
            "Date": formatdate(time.time() - 60 - seconds, usegmt=True)}


# The three kinds of cached source: heuristic freshness from Last-Modified only (a tenth of its age
# at Date: 100 s, so 900 s stale now), max-age (40 s stale), and must-revalidate (never served stale).
SOURCES = {
    "last-modified": dict(last_modified=time.time() - 2000,
                          headers={"Content-Type": "image/png", "Date": formatdate(time.time() - 1000, usegmt=True)}),
    "max-age": dict(headers=stale_by(40)),
    "must-revalidate": dict(headers=stale_by(40, "max-age=60, must-revalidate")),
}


def break_origin(origin, settings, path, how, route):
    if how == "down":
        origin.down()
    elif how == "timeout":
        settings.ISTORE_READ_TIMEOUT = 0.3
        origin.add(path, PAYLOAD, delay=2, **route)
    else:
        origin.add(path, b"origin error", status=500, headers={"Content-Type": "text/plain"})


@pytest.fixture
def cached(api, origin):
    """``cached(kind, query)``: a registered source of that kind, fetched once; returns (key, path)."""
    def make(kind, path="/img.png", query=""):
        url = origin.add(path, PAYLOAD, **SOURCES[kind])
        key = f"/stale/{url}"
        assert api.post(key, {}).status_code in (200, 201)
        first = api.get(key, query)
        assert first.status_code == 200 and "Cache-Status" not in first, "the first fetch is a plain answer"
        return key, path
    return make


@pytest.mark.parametrize("how", ["down", "timeout", "500"])
@pytest.mark.parametrize("kind", ["last-modified", "max-age"])
def test_stale_copy_stands_in_for_a_failing_origin(api, origin, settings, cached, kind, how):
    key, path = cached(kind)
    break_origin(origin, settings, path, how, SOURCES[kind])
    response = api.get(key)
    assert response.status_code == 200, f"{kind}, origin {how}: {response.status_code} {content(response)[:200]}"
    assert content(response) == PAYLOAD
    assert response["Cache-Status"] == STALE


@pytest.mark.parametrize("how,status", [("down", 502), ("timeout", 504), ("500", 502)])
def test_must_revalidate_is_never_served_stale(api, origin, settings, cached, how, status):
    key, path = cached("must-revalidate")
    break_origin(origin, settings, path, how, SOURCES["must-revalidate"])
    response = api.get(key)
    assert response.status_code == status, f"origin {how}: a must-revalidate source must fail, not go stale"


@pytest.mark.parametrize("how", ["down", "500"])
def test_derivatives_of_a_stale_source_are_served_too(api, origin, settings, cached, how):
    key, path = cached("max-age", query="apply=resize&w=20")
    break_origin(origin, settings, path, how, SOURCES["max-age"])
    cached_result = api.get(key, "apply=resize&w=20")
    assert cached_result.status_code == 200 and cached_result["Cache-Status"] == STALE
    assert Image.open(io.BytesIO(content(cached_result))).size == (20, 15)
    new_result = api.get(key, "apply=resize&w=10")
    assert new_result.status_code == 200 and new_result["Cache-Status"] == STALE, "computed from the stale copy"


def test_a_fresh_answer_after_recovery_is_not_marked(api, origin, settings, cached):
    key, path = cached("max-age")
    origin.add(path, PAYLOAD, headers={"Content-Type": "image/png", "Cache-Control": "max-age=60"})
    response = api.get(key)
    assert response.status_code == 200 and "Cache-Status" not in response


@pytest.mark.parametrize("setting,cache_control,status", [
    (30, "max-age=60", 502),  # 40 s stale: past the window
    (0, "max-age=60", 502),  # off
    (0, "max-age=60, stale-if-error=100", 200),  # the origin's own window wins
    (86400, "max-age=60, stale-if-error=30", 502),  # also when it is shorter
    (86400, "max-age=60, must-revalidate, stale-if-error=100", 200),  # it asked for both
])
def test_the_window(api, origin, settings, setting, cache_control, status):
    settings.ISTORE_STALE_IF_ERROR = setting
    url = origin.add("/w.png", PAYLOAD, headers=stale_by(40, cache_control))
    key = f"/stale/{url}"
    api.post(key, {})
    assert api.get(key).status_code == 200
    origin.add("/w.png", b"down", status=503)
    response = api.get(key)
    assert response.status_code == status, f"ISTORE_STALE_IF_ERROR={setting}, {cache_control}"


def test_no_store_is_never_served_stale(api, origin):
    url = origin.add("/ns.png", PAYLOAD, headers={"Content-Type": "image/png", "Cache-Control": "no-store"})
    key = f"/stale/{url}"
    api.post(key, {})
    assert api.get(key).status_code == 200
    origin.add("/ns.png", b"down", status=500)
    assert api.get(key).status_code == 502


def test_a_failing_origin_is_asked_again_only_after_a_pause(api, origin, settings, cached):
    key, path = cached("max-age")
    origin.add(path, b"down", status=500)
    assert api.get(key)["Cache-Status"] == STALE
    seen = origin.count[path]
    for _ in range(3):
        assert api.get(key)["Cache-Status"] == STALE
    assert origin.count[path] == seen, "within seconds of a failure, the stale copy is served without asking"


def test_source_errors_without_a_cached_copy_stay_errors(api, origin):
    url = origin.add("/never.png", b"down", status=500)
    key = f"/stale/{url}"
    api.post(key, {})
    response = api.get(key)
    assert response.status_code == 502 and body(response)["error"] == "source_error"
