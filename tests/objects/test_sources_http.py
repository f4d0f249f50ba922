"""http sources through the API: fetch, cache, revalidation, limits, errors (§4, §6)."""
import time
from email.utils import formatdate

import pytest

from objects import cache as shared_cache
from objects.sources.http import STREAM_MIN_BYTES
from tests.conftest import body
from tests.objects.conftest import content

PAYLOAD = bytes(range(256)) * 400  # 100 KiB


def register(api, key):
    response = api.post(key, {"k": key})
    assert response.status_code in (200, 201), response.content
    return key


def test_registered_http_source_returns_its_bytes(api, origin):
    url = origin.add("/img/a.bin", PAYLOAD, headers={"Content-Type": "application/x-thing"})
    key = register(api, f"/src/{url}")
    response = api.get(key)
    assert response.status_code == 200
    assert content(response) == PAYLOAD, "the source's bytes must come back byte for byte"
    assert response["Content-Type"] == "application/x-thing"
    assert response["Content-Length"] == str(len(PAYLOAD))
    assert response["ETag"].startswith('"') and not response["ETag"].startswith("W/")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "Cache-Control" in response


def test_unregistered_key_is_404_even_when_source_is_reachable(api, origin):
    url = origin.add("/open.bin", PAYLOAD)
    response = api.get(f"/src/{url}")
    assert response.status_code == 404
    assert body(response)["error"] == "no_such_key"
    assert origin.count["/open.bin"] == 0, "istore is a registry, not an open proxy"


def test_fresh_response_is_served_from_cache(api, origin):
    url = origin.add("/fresh.bin", PAYLOAD, headers={"Cache-Control": "max-age=3600"})
    key = register(api, f"/src/{url}")
    first, second = api.get(key), api.get(key)
    assert content(first) == content(second) == PAYLOAD
    assert origin.count["/fresh.bin"] == 1, "a fresh cached source must not be fetched again"


def test_expires_is_honoured(api, origin):
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 3600))
    url = origin.add("/expires.bin", PAYLOAD, headers={"Expires": future})
    key = register(api, f"/src/{url}")
    api.get(key), api.get(key)
    assert origin.count["/expires.bin"] == 1


def test_etag_revalidation_gets_304_from_origin(api, origin):
    url = origin.add("/etag.bin", PAYLOAD, etag='"v1"')
    key = register(api, f"/src/{url}")
    first, second = api.get(key), api.get(key)
    assert content(second) == PAYLOAD
    assert origin.statuses("/etag.bin") == [200, 304], "a stale entry must be revalidated, not refetched"
    assert origin.headers_seen("/etag.bin")[1].get("If-None-Match") == '"v1"'
    assert first["ETag"] == second["ETag"]


def test_last_modified_revalidation_gets_304_from_origin(api, origin):
    url = origin.add("/lm.bin", PAYLOAD, last_modified=time.time() - 3600, headers={"Cache-Control": "max-age=0"})
    key = register(api, f"/src/{url}")
    api.get(key)
    second = api.get(key)
    assert content(second) == PAYLOAD
    assert origin.statuses("/lm.bin") == [200, 304]
    sent = origin.headers_seen("/lm.bin")[1]
    assert "If-Modified-Since" in sent and "If-None-Match" not in sent


def test_last_modified_alone_gives_heuristic_freshness(api, origin):
    """No Cache-Control or Expires: fresh for a tenth of the age since Last-Modified (RFC 9111 §4.2.2)."""
    url = origin.add("/static.bin", PAYLOAD, last_modified=time.time() - 3600)
    key = register(api, f"/src/{url}")
    api.get(key)
    assert content(api.get(key)) == PAYLOAD
    assert origin.statuses("/static.bin") == [200], "a static file an hour old is fresh for six minutes"


@pytest.mark.parametrize("age,date_age,wait", [
    (3600, 1000, 0),  # fresh until 740 s before it was fetched: stored stale
    (30, 1, 3),  # fresh for about 2 s once fetched (an Expires the heuristic wrote), then stale
])
def test_304_of_a_last_modified_only_source_renews_its_heuristic_freshness(api, origin, age, date_age, wait):
    last_modified = time.time() - age
    url = origin.add("/lm-only.bin", PAYLOAD, last_modified=last_modified,
                     headers={"Date": formatdate(time.time() - date_age, usegmt=True)})
    key = register(api, f"/src/{url}")
    api.get(key)
    time.sleep(wait)
    origin.add("/lm-only.bin", PAYLOAD, last_modified=last_modified)  # answers with today's Date
    api.get(key)  # revalidated: 304
    assert content(api.get(key)) == PAYLOAD
    assert origin.statuses("/lm-only.bin") == [200, 304], "after the 304 the copy is fresh for a tenth of its age again"


def test_changed_source_is_fetched_again(api, origin):
    url = origin.add("/changing.bin", b"old bytes", etag='"v1"')
    key = register(api, f"/src/{url}")
    assert content(api.get(key)) == b"old bytes"
    origin.add("/changing.bin", b"new bytes!", etag='"v2"')
    response = api.get(key)
    assert content(response) == b"new bytes!"
    assert origin.statuses("/changing.bin") == [200, 200]


def test_304_from_origin_refreshes_freshness(api, origin):
    url = origin.add("/refresh.bin", PAYLOAD, etag='"v1"', headers={"Cache-Control": "max-age=0"})
    key = register(api, f"/src/{url}")
    api.get(key)
    origin.add("/refresh.bin", PAYLOAD, etag='"v1"', headers={"Cache-Control": "max-age=3600"})
    api.get(key)  # revalidated: the 304 brings max-age=3600
    api.get(key)
    assert origin.statuses("/refresh.bin") == [200, 304], "after the 304 the entry is fresh again"


def test_no_store_is_never_reused(api, origin):
    url = origin.add("/nostore.bin", PAYLOAD, headers={"Cache-Control": "no-store"})
    key = register(api, f"/src/{url}")
    first = api.get(key)
    api.get(key)
    assert origin.count["/nostore.bin"] == 2
    assert first["Cache-Control"] == "no-store"


def test_if_none_match_gives_304(api, origin):
    url = origin.add("/cond.bin", PAYLOAD, headers={"Cache-Control": "max-age=3600"})
    key = register(api, f"/src/{url}")
    etag = api.get(key)["ETag"]
    response = api.get(key, HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 304


def test_range_gives_206_once_cached(api, origin):
    url = origin.add("/video.webm", PAYLOAD, headers={"Cache-Control": "max-age=3600"})
    key = register(api, f"/src/{url}")
    response = api.get(key, HTTP_RANGE="bytes=100-199")
    assert response.status_code == 206
    assert content(response) == PAYLOAD[100:200]
    assert response["Content-Range"] == f"bytes 100-199/{len(PAYLOAD)}"


def test_head_has_length_and_no_body(api, origin):
    url = origin.add("/head.bin", PAYLOAD)
    key = register(api, f"/src/{url}")
    response = api.head(key)
    assert response.status_code == 200
    assert response["Content-Length"] == str(len(PAYLOAD))
    assert content(response) == b""


def test_html_source_is_sandboxed(api, origin):
    url = origin.add("/page.html", b"<script>alert(1)</script>", headers={"Content-Type": "text/html"})
    key = register(api, f"/src/{url}")
    response = api.get(key)
    assert response["Content-Security-Policy"] == "sandbox"
    assert response["Content-Disposition"] == "attachment"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_missing_content_type_is_guessed(api, origin):
    png = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489")
    url = origin.add("/noext", png)
    key = register(api, f"/src/{url}")
    assert api.get(key)["Content-Type"] == "image/png"


def test_redirects_are_followed(api, origin):
    target = origin.add("/final.bin", PAYLOAD)
    url = origin.add("/moved", status=302, headers={"Location": "/final.bin"})
    key = register(api, f"/src/{url}")
    assert content(api.get(key)) == PAYLOAD
    assert origin.count["/final.bin"] == 1 and target


def test_too_many_redirects_is_502(api, origin, settings):
    settings.ISTORE_MAX_REDIRECTS = 2
    for hop in range(4):
        origin.add(f"/r{hop}", status=301, headers={"Location": f"/r{hop + 1}"})
    origin.add("/r4", PAYLOAD)
    key = register(api, f"/src/{origin.url('/r0')}")
    response = api.get(key)
    assert response.status_code == 502
    assert body(response)["error"] == "too_many_redirects"
    assert origin.count["/r3"] == 0, "no hop past the limit"


def test_source_404_is_404(api, origin):
    key = register(api, f"/src/{origin.url('/gone.bin')}")
    response = api.get(key)
    assert response.status_code == 404
    assert body(response)["error"] == "source_not_found"
    assert "404" in body(response)["detail"]


@pytest.mark.parametrize("status", [500, 403, 503])
def test_other_source_errors_are_502(api, origin, status):
    url = origin.add(f"/err{status}", b"oops", status=status)
    key = register(api, f"/src/{url}")
    response = api.get(key)
    assert response.status_code == 502
    assert str(status) in body(response)["detail"], "the error must name the source status"


def test_unreachable_source_is_502(api, origin, settings):
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    key = register(api, f"/src/http://127.0.0.1:{port}/x.bin")
    response = api.get(key)
    assert response.status_code == 502
    assert "unreachable" in body(response)["detail"]


def test_source_timeout_is_504(api, origin, settings):
    settings.ISTORE_READ_TIMEOUT = 0.3
    url = origin.add("/slow.bin", PAYLOAD, delay=1.0)
    key = register(api, f"/src/{url}")
    response = api.get(key)
    assert response.status_code == 504
    assert "ISTORE_READ_TIMEOUT" in body(response)["detail"]


def test_stall_mid_body_is_504_and_nothing_is_cached(api, origin, settings):
    settings.ISTORE_READ_TIMEOUT = 0.3
    url = origin.add("/stall.bin", PAYLOAD, delay=1.0, stall_after=1000, headers={"Cache-Control": "max-age=60"})
    key = register(api, f"/src/{url}")
    assert api.get(key).status_code == 504
    origin.add("/stall.bin", PAYLOAD, headers={"Cache-Control": "max-age=60"})
    assert content(api.get(key)) == PAYLOAD, "a broken fetch must not leave a truncated body in the cache"


def test_an_origin_that_drips_is_cut_at_the_total_deadline_with_504(api, origin, settings):
    """One byte every 0.2 s never trips the read timeout; ISTORE_SOURCE_TIMEOUT cuts it."""
    settings.ISTORE_SOURCE_TIMEOUT = 1
    url = origin.add("/drip.bin", PAYLOAD[:1000], drip=0.2, headers={"Cache-Control": "max-age=60"})
    key = register(api, f"/src/{url}")
    started = time.monotonic()
    response = api.get(key)
    elapsed = time.monotonic() - started
    assert response.status_code == 504, f"a dripping origin should be 504, got {response.status_code}"
    assert body(response)["error"] == "source_timeout" and "ISTORE_SOURCE_TIMEOUT" in body(response)["detail"]
    assert elapsed < 3, f"the fetch went on for {elapsed:.1f} s past a 1 s deadline"


def test_a_source_cut_at_the_deadline_after_its_first_bytes_went_out_is_truncated(api, origin, settings):
    """Served while it downloads: past the deadline the body ends short of its Content-Length."""
    settings.ISTORE_SOURCE_TIMEOUT = 1.5
    big = bytes(range(256)) * (STREAM_MIN_BYTES // 256 + 1000)
    url = origin.add("/big-drip.bin", big, drip=0.2, stall_after=STREAM_MIN_BYTES,
                     headers={"Cache-Control": "max-age=60"})
    key = register(api, f"/src/{url}")
    response = api.get(key)
    assert response.status_code == 200 and int(response["Content-Length"]) == len(big)
    received = bytearray()
    with pytest.raises(OSError):
        for chunk in response.streaming_content:
            received += chunk
    assert len(received) < len(big), "the cut response looked complete"
    origin.add("/big-drip.bin", big, headers={"Cache-Control": "max-age=60"})
    assert content(api.get(key)) == big, "a fetch cut at the deadline must not leave a truncated body in the cache"


def test_connection_closed_before_content_length_is_502_and_nothing_is_cached(api, origin):
    """An origin that declares more bytes than it sends (wrong Content-Length, or a reset mid-body)."""
    url = origin.add("/short.bin", PAYLOAD, stall_after=1000, delay=0, headers={"Cache-Control": "max-age=60"})
    key = register(api, f"/src/{url}")
    response = api.get(key)
    assert response.status_code == 502, response.status_code
    assert "broke off" in body(response)["detail"], "the detail says the source broke off"
    origin.add("/short.bin", PAYLOAD, headers={"Cache-Control": "max-age=60"})
    assert content(api.get(key)) == PAYLOAD, "a broken fetch must not leave a truncated body in the cache"


def test_redirect_loop_is_502(api, origin):
    loop = origin.url("/loop")
    origin.add("/loop", status=302, headers={"Location": loop})
    key = register(api, f"/src/{loop}")
    response = api.get(key)
    assert response.status_code == 502
    assert "redirect" in body(response)["detail"].lower()


def test_connect_timeout_is_504(api, settings, monkeypatch):
    import socket

    from objects.sources import guard

    settings.ISTORE_CONNECT_TIMEOUT = 0.2

    def hang(*args, **kwargs):
        raise socket.timeout("timed out")

    monkeypatch.setattr(guard.socket.socket, "connect", lambda self, addr: hang())
    key = register(api, "/src/http://203.0.113.9/x.bin")
    response = api.get(key)
    assert response.status_code == 504
    assert "ISTORE_CONNECT_TIMEOUT" in body(response)["detail"]


def test_content_length_over_limit_is_413(api, origin, settings):
    settings.ISTORE_MAX_SOURCE_BYTES = 1000
    url = origin.add("/big.bin", PAYLOAD)
    key = register(api, f"/src/{url}")
    response = api.get(key)
    assert response.status_code == 413
    assert body(response)["error"] == "source_too_large"


def test_streamed_body_over_limit_is_413(api, origin, settings):
    settings.ISTORE_MAX_SOURCE_BYTES = 1000
    url = origin.add("/bigchunked.bin", PAYLOAD, chunked=True)
    key = register(api, f"/src/{url}")
    response = api.get(key)
    assert response.status_code == 413
    assert not any(k.startswith("srcbody:") for k in shared_cache.get_cache().disk.iterkeys())


def test_https_goes_through_the_guard(api, settings):
    settings.ISTORE_ALLOW_LOOPBACK_SOURCES = False
    key = register(api, "/src/https://localhost:1/x.jpg")
    response = api.get(key)
    assert response.status_code == 403


def test_https_failure_is_502(api, origin):
    url = origin.add("/tls.bin", PAYLOAD)
    key = register(api, "/src/" + url.replace("http://", "https://"))
    response = api.get(key)
    assert response.status_code == 502, "TLS to a plain-HTTP port must fail as a source error"
