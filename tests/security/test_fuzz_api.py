"""
Fuzzing the HTTP API (issue 9 §1): random methods, paths, bodies, headers and
queries against the whole Django stack; no input may give a 500.

The client is our own, hypothesis-driven, over Django's test client (with the
raw request target passed on as gunicorn does), rather than schemathesis: the
inputs that matter most here are the ones an OpenAPI generator does not make
(``%00`` and broken percent-escapes, ``//``, 4 KB keys, an embedded
``scheme://`` in the middle of a path, verbs as the last segment, bodies whose
Content-Type lies). The description at ``/_schema/`` still drives it: the query
parameter names and the ``apply`` operations are read from it, so a new
operation or parameter is fuzzed as soon as it is described.

Each example is 1-3 requests run inside a savepoint that is rolled back, over
a world seeded once per run: uploaded JPEG/PNG/GIF/WebP/SVG/HTML/text and a
small video, a directory tree, vectors, and keys with ``http`` (a local origin
on 127.0.0.1), ``file`` (a temporary root) and ``self`` sources. So examples
both hit real content (processing, ranges, listings, verbs) and stay
reproducible while hypothesis shrinks them.

What fails an example:

- an exception out of the view (Django's test client re-raises it), or
  status 500, or a status outside the API's list;
- an error (4xx/5xx) outside the admin whose body is not JSON
  ``{"error": str, "detail": str}``;
- an error body showing the SECRET_KEY, a traceback, or a local path;
- a HEAD response with a body; HTML/SVG/XML content without
  ``Content-Security-Policy: sandbox``; any response without ``nosniff``;
- a request slower than ``SLOW_SECONDS``.

``benchmarks/fuzz_api.py`` runs this same test for 5 minutes (set
``ISTORE_FUZZ_SECONDS``); in the suite it is bounded to ``MAX_EXAMPLES``.
"""
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from objects import schema as api_schema
from tests.security import conftest as media

MAX_EXAMPLES = int(os.environ.get("ISTORE_FUZZ_EXAMPLES", "300"))
SLOW_SECONDS = 15.0
ALLOWED_STATUSES = {200, 201, 206, 302, 304, 400, 401, 403, 404, 405, 411, 413, 414, 415, 416, 422, 431,
                    501, 502, 503, 504, 508}
ACTIVE_TYPES = ("text/html", "application/xhtml", "image/svg", "text/xml", "application/xml")
PATH_SAFE = "/:@!$&'()*+,;=~"
VALID_TOKEN = "<valid token>"  # replaced by the run's real token when the request is sent

# Input families that once hit bugs (docs/security.md); each has a regression
# test at the end of this file or in test_limits.py. All are fuzzed now.
FUZZ_NON_FINITE_JSON = True  # NaN / Infinity / 1e400 in metadata
FUZZ_LONE_SURROGATES = True  # "\ud800" in metadata
FUZZ_NON_FINITE_VERBS = True  # "every": NaN in _expand
FUZZ_NUL_IN_JSON = True  # "\u0000" in a metadata string (PostgreSQL's jsonb cannot store it)
FUZZ_DEEP_JSON = True  # JSON nested ~900+ levels in metadata or a verb body


# ---------------------------------------------------------------- the schema drives the vocabulary


def _schema_vocabulary():
    document = api_schema.build()
    parameters = document["paths"]["/{key}"]["get"]["parameters"]
    query = [p for p in parameters if p["in"] == "query"]
    names = [p["name"] for p in query]
    operations = next(p for p in query if p["name"] == "apply")["schema"]["enum"]
    verbs = [path.removeprefix("/{dir}") for path in document["paths"] if path.startswith("/{dir}")]
    return names, operations, verbs, {p["name"]: p["schema"] for p in query}


QUERY_NAMES, OPERATIONS, VERBS, QUERY_SCHEMAS = _schema_vocabulary()


# ---------------------------------------------------------------- the world every example starts from


@dataclass
class World:
    keys: list  # registered keys, as raw request paths (already percent-encoded)
    dirs: list
    media: dict  # name -> bytes usable as uploads
    port: int
    root: str
    stats: Counter = field(default_factory=Counter)

    def __repr__(self):
        return f"World({len(self.keys)} keys)"


def _seed(api, auth, origin, root, video):
    """Register the world through the API itself (so setup exercises it too)."""
    from tests.conftest import url

    media_files = {
        "a.jpg": (media.jpeg(), "image/jpeg"),
        "b.png": (media.png(), "image/png"),
        "c.gif": (media.animated_gif(frames=4, size=(16, 16)), "image/gif"),
        "d.webp": (media.webp(), "image/webp"),
        "e.svg": (media.SVG_WITH_SCRIPT, "image/svg+xml"),
        "f.html": (media.HTML_WITH_SCRIPT, "text/html"),
        "g.txt": (b"plain text\n" * 20, ""),
        "h.jpg": (media.truncated(media.jpeg()), "image/jpeg"),
    }
    if video:
        media_files["v.webm"] = (video, "video/webm")
    registered = []
    for name, (data, content_type) in media_files.items():
        key = f"/fz/{name}"
        response = api.upload(key, data, content_type=content_type or None, **auth)
        assert response.status_code in (200, 201), response.content
        registered.append(key)
    with open(os.path.join(root, "a.png"), "wb") as file:
        file.write(media.png())
    metadata_keys = [
        "/fz/", "/fz/dir/", "/fz/dir/x", "/fz/dir/sub/y", "/fz/dir/sub/deeper/z", "/fz/a%3Fb", "/fz//double",
        f"/fz/src/http://127.0.0.1:{origin.port}/img.png",
        f"/fz/src/http://127.0.0.1:{origin.port}/page.html",
        f"/fz/src/http://127.0.0.1:{origin.port}/missing.png",
        f"/fz/src/http://127.0.0.1:{origin.port}/boom",
        f"/fz/src/file://{root}/a.png",
        f"/fz/src/file://{root}/missing.png",
        "/fz/src/self://../a.jpg",
        "/fz/src/self:///fz/b.png%3Fapply=resize&w=10",
        "/fz/src/self://self:///fz/a.jpg%253Fapply=grayscale",
        "/fz/src/self:///fz/src/self:///fz/src/",
        "/fz/loop/self:///fz/loop/self:///fz/loop/",
    ]
    for index, key in enumerate(metadata_keys):
        response = api.post(key, {"n": index, "tags": ["fuzz"]}, **auth)
        assert response.status_code in (200, 201), (key, response.content)
        registered.append(key)
    for name, vector in (("0", [0.5, 0.8]), ("a", [1, 0]), ("b", [0, 1]), ("c", [-0.1, -0.1])):
        key = f"/fz/vec/{name}"
        assert api.post(key, {"vec": vector}, **auth).status_code in (200, 201)
        registered.append(key)
    uploads = {name: data for name, (data, _) in media_files.items()}
    uploads["random"] = bytes(range(256)) * 4
    paths = [url(key) for key in registered]
    dirs = [url(d) for d in ("/", "/fz/", "/fz/dir/", "/fz/dir/sub/", "/fz/src/", "/fz/vec/", "/nothing/")]
    return World(keys=paths, dirs=dirs, media=uploads, port=origin.port, root=root)


@pytest.fixture
def world(api, auth, settings, tmp_path, token, monkeypatch):
    settings.ISTORE_ALLOW_ANONYMOUS_WRITES = False
    settings.ISTORE_ALLOW_LOOPBACK_SOURCES = True
    settings.ISTORE_ALLOWED_SOURCES = ["127.0.0.1"]  # never the network: every other host is a 403
    settings.ISTORE_CONNECT_TIMEOUT = 1.0
    settings.ISTORE_READ_TIMEOUT = 2.0
    settings.ISTORE_FFMPEG_TIMEOUT = 10.0
    settings.ISTORE_MAX_UPLOAD_BYTES = 64 * 1024
    settings.ISTORE_MAX_METADATA_BYTES = 4096
    # Processing cost is not what this test measures: keep each example fast.
    settings.ISTORE_MAX_OUTPUT_PIXELS = 2_000_000
    root = tmp_path / "files"
    root.mkdir()
    settings.ISTORE_FILE_ROOTS = [str(root)]
    origin = media.TinyOrigin({
        "/img.png": (200, "image/png", media.png()),
        "/page.html": (200, "text/html", media.HTML_WITH_SCRIPT),
        "/boom": (503, "text/plain", b"origin down"),
    })
    try:
        yield _seed(api, auth, origin, str(root), media.webm(seconds=2))
    finally:
        origin.close()


# ---------------------------------------------------------------- strategies


@dataclass
class Request:
    method: str
    path: str
    query: str
    body: bytes
    content_type: str | None
    headers: dict
    truncate_to: int | None = None

    def target(self):
        return self.path + ("?" + self.query if self.query else "")

    def __repr__(self):
        shown = self.body[:200] + (b"..." if len(self.body) > 200 else b"")
        return (f"Request({self.method} {self.target()[:300]!r} content_type={self.content_type!r} "
                f"headers={self.headers!r} body={shown!r} truncate_to={self.truncate_to})")


def _pct(data):
    return "".join(f"%{byte:02X}" for byte in data)


SEG_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="/"), max_size=10).map(
    lambda text: quote(text, safe=""))
BAD_PCT = st.sampled_from(["%", "%G0", "%0", "%%", "%2", "%u0041", "%C0%AF", "%ED%A0%80", "%F4%90%80%80",
                           "%EF%BF%BF", "%C2%85", "%7F", "%00", "%2F", "%252F", "%3F", "%23", "%FF", "%E2%80%AE"])
SPECIAL_SEGMENTS = st.sampled_from(["", ".", "..", "%2e%2e", ".%2e", "_search", "_expand", "_create_index", "_x",
                                    "_admin", "_schema", "a", "a.jpg", "x.svg", "http:", "https:", "file:", "self:",
                                    "ftp:", "HTTP:", "9:", "javascript:", "data:", "127.0.0.1", "[::1]",
                                    "169.254.169.254", "localhost:1", "~", "*", "'", "\"", "%20"])
SEGMENT = st.one_of(SEG_TEXT, st.binary(min_size=1, max_size=4).map(_pct), BAD_PCT, SPECIAL_SEGMENTS)
SCHEMES = st.sampled_from(["http", "https", "file", "self", "ftp", "gopher", "s3", "0", "data", "h" * 40])


def _join(parts, trailing):
    return "/" + "/".join(parts) + ("/" if trailing else "")


@st.composite
def paths(draw, world):
    kind = draw(st.integers(0, 11))
    if kind <= 3:
        path = draw(st.sampled_from(world.keys))
    elif kind == 4:
        path = draw(st.sampled_from(world.dirs))
    elif kind == 5:
        path = draw(st.sampled_from(world.dirs)) + draw(st.sampled_from(VERBS + ["_nope"]))
    elif kind == 6:
        path = "/fz" + _join(draw(st.lists(SEGMENT, max_size=5)), draw(st.booleans()))
    elif kind == 7:
        path = _join(draw(st.lists(SEGMENT, max_size=6)), draw(st.booleans()))
    elif kind == 8:
        rest = draw(st.one_of(
            st.sampled_from([f"127.0.0.1:{world.port}/img.png", f"127.0.0.1:{world.port}/boom",
                             f"{world.root}/a.png", f"{world.root}/../../etc/passwd", "/etc/passwd",
                             "./a.jpg", "../a.jpg", "/fz/a.jpg%3Fapply=resize&w=5", "self:///fz/b.png",
                             "localhost/x", "169.254.169.254/latest/meta-data/", "[::1]:80/", "0/x",
                             "example.com/a.jpg", "%2e%2e/%2e%2e/etc/passwd"]),
            st.lists(SEGMENT, max_size=4).map("/".join)))
        path = "/fz/e" + _join(draw(st.lists(SEGMENT, max_size=2)), True) + draw(SCHEMES) + "://" + rest
    elif kind == 9:
        size = draw(st.integers(4070, 4110))  # bytes of the decoded key, around the 4096 limit
        unit = draw(st.sampled_from(["k", "/", "%C3%A9"]))
        path = "/" + unit * ((size - 1) // (2 if unit == "%C3%A9" else 1))
    elif kind == 10:
        path = draw(st.sampled_from(["/_schema/", "/_health", "/_ready", "/_metrics", "/_admin/", "/_admin/login/",
                                     "/_admin/objects/item/", "/_admin/objects/item/1/change/",
                                     "/_admin/objects/item/delete-folder/", "/_static/x", "/_", "//", "///a",
                                     "/fz//a", "/%2F%2F", "/%00", "/.", "/..", "/_schema"]))
    else:
        path = draw(st.sampled_from(world.keys)) + draw(st.sampled_from(["/", "//", "x", "%00", "/..", "/_search"]))
    return path


NUMBER_TEXT = st.one_of(
    st.integers(-10, 400).map(str),
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "0", "1", "-1", "0.5", "1e309", "-0", "nan", "inf", "0x10", "1_0", " 1", "１", "9" * 40,
                     "1e-400", ".5", "5.", "+3", "1,2", "true"]),
)
QUERY_VALUE = st.one_of(
    NUMBER_TEXT,
    st.sampled_from(OPERATIONS + ["resize ", "RESIZE", "", "../", "jpeg", "png", "webp", "avif", "gif", "bmp", "/",
                                 "//", "/fz/", "/fz/a.jpg", "/fz/dir/sub/", "x1/1,y1/1,x2/5,y2/5",
                                 "x1/0,y1/0,x2/1000000000,y2/1000000000,r/255", "x1/-5,y1/-5,x2/5,y2/5,g/300"]),
    st.text(max_size=12),
)
QUERY_NAME = st.one_of(st.sampled_from(QUERY_NAMES), st.text(max_size=6))


def _value_for(schema):
    """A mostly valid value for one described parameter, with small sizes so processing stays fast."""
    if schema.get("type") == "array":
        return st.lists(_value_for(schema["items"]), min_size=1, max_size=3).map(tuple)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if schema.get("type") == "integer":
        low = max(int(schema.get("minimum", 0)), -5)
        return st.integers(low, max(low, 120)).map(str)
    if schema.get("type") == "number":
        low = float(schema.get("minimum", schema.get("exclusiveMinimum", -5)))
        high = min(float(schema.get("maximum", 50)), 50)
        return st.floats(max(low, -5), max(high, low + 1), allow_nan=False).map(lambda v: f"{v:.3g}")
    return st.sampled_from(["x1/1,y1/1,x2/20,y2/20,r/255", "x1/0,y1/0,x2/3,y2/3"])


@st.composite
def queries(draw):
    kind = draw(st.integers(0, 5))
    pairs = []
    if kind in (0, 1):  # one operation with its described parameters (mostly valid)
        operation = draw(st.sampled_from(OPERATIONS))
        pairs.append(("apply", operation))
        for name in QUERY_NAMES:
            if name in ("apply", "meta", "limit", "after", "delimiter"):
                continue
            if draw(st.integers(0, 3)) == 0:
                value = draw(_value_for(QUERY_SCHEMAS[name]))
                for one in value if isinstance(value, tuple) else (value,):
                    pairs.append((name, one))
    elif kind == 2:  # listing
        if draw(st.booleans()):
            pairs.append(("limit", draw(st.one_of(st.integers(1, 5).map(str), NUMBER_TEXT))))
        if draw(st.booleans()):
            pairs.append(("after", draw(st.one_of(st.sampled_from(["/fz/", "/fz/dir/", "/fz/dir/sub/", "/fz/b.png",
                                                                   "/", "/zzz", "/fz/a%3Fb"]), QUERY_VALUE))))
        if draw(st.booleans()):
            pairs.append(("delimiter", draw(st.sampled_from(["/", "", ",", "//", "%2F"]))))
        if draw(st.integers(0, 3)) == 0:
            pairs.append(("meta", draw(st.sampled_from(["1", "true", "0", "yes"]))))
    elif kind == 3:  # anything
        pairs = draw(st.lists(st.tuples(QUERY_NAME, QUERY_VALUE), max_size=6))
    elif kind == 4:  # raw, possibly broken, query text
        return draw(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="#"),
                            max_size=40))
    if not pairs:
        return ""
    return "&".join(f"{quote(name, safe='')}={quote(value, safe='/,')}" for name, value in pairs)


JSON_TEXT = st.text(st.characters(exclude_characters=None if FUZZ_NUL_IN_JSON else "\x00"), max_size=12)
JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                        st.floats(allow_nan=FUZZ_NON_FINITE_JSON, allow_infinity=FUZZ_NON_FINITE_JSON), JSON_TEXT)
JSON_VALUES = st.recursive(JSON_LEAVES, lambda children: st.one_of(
    st.lists(children, max_size=3), st.dictionaries(JSON_TEXT, children, max_size=3)), max_leaves=10)


@st.composite
def metadata_texts(draw):
    kind = draw(st.integers(0, 7))
    if kind <= 2:
        return json.dumps(draw(st.dictionaries(JSON_TEXT, JSON_VALUES, max_size=4)))
    if kind == 3:
        return json.dumps(draw(JSON_VALUES))
    if kind == 4:
        return json.dumps({"big": "x" * draw(st.integers(3000, 5000))})
    if kind in (5, 6):
        raw = ["{", "", "null", "[]", "{\"a\":}", "{'a': 1}", "{\"a\": 1}}", "\ufeff{}", "{\"a\": 01}"]
        if FUZZ_NON_FINITE_JSON:
            raw += ['{"a": NaN}', '{"a": Infinity}', '{"a": -Infinity}', '{"a": 1e400}']
        if FUZZ_LONE_SURROGATES:
            raw += ['{"a": "\\ud800"}', '{"\\udfff": 1}']
        if FUZZ_DEEP_JSON:
            raw += ['{"a": ' + "[" * 3000 + "]" * 3000 + "}"]
        return draw(st.sampled_from(raw))
    return draw(st.text(max_size=30))


CONTENT_TYPES = st.sampled_from([
    "", "image/png", "image/jpeg", "text/html", "text/html; charset=utf-8", "image/svg+xml", "text/plain",
    "application/octet-stream", "application/json", "application/json; charset=bogus",
    "application/x-www-form-urlencoded", "multipart/form-data", "multipart/form-data; boundary=xyz",
    "multipart/form-data; boundary=", "video/webm", "application/xml", "x/y", "*/*", "text/html,image/png",
])


BOUNDARY = "fuzzfuzzBoUnDaRy"


def multipart(fields, files):
    """A multipart/form-data body, built by hand so file names can be anything (``../x``, NUL)."""
    parts = []
    for name, value in fields.items():
        parts += [f"--{BOUNDARY}".encode(), f'Content-Disposition: form-data; name="{name}"'.encode(), b"",
                  value.encode("utf-8")]
    for name, filename, content_type, data in files:
        parts += [f"--{BOUNDARY}".encode(),
                  f'Content-Disposition: form-data; name="{name}"; filename="{filename}"'.encode()]
        if content_type:
            parts.append(f"Content-Type: {content_type}".encode())
        parts += [b"", data]
    parts += [f"--{BOUNDARY}--".encode(), b""]
    return b"\r\n".join(parts)


@st.composite
def bodies(draw, world, path):
    """(body bytes, content type or None)."""
    kind = draw(st.integers(0, 6))
    if kind == 0:
        return b"", draw(st.one_of(st.none(), CONTENT_TYPES))
    if kind == 1:  # urlencoded form
        fields = {"metadata": draw(metadata_texts())}
        if draw(st.booleans()):
            fields[draw(st.text(max_size=5))] = draw(st.text(max_size=10))
        return urlencode(fields).encode(), "application/x-www-form-urlencoded"
    if kind == 2:  # multipart, maybe with a file
        fields = {}
        if draw(st.booleans()):
            fields["metadata"] = draw(metadata_texts())
        files = []
        if draw(st.integers(0, 3)):
            name = draw(st.sampled_from(sorted(world.media)))
            data = world.media[name]
            if draw(st.booleans()):
                data = draw(st.sampled_from([media.truncated(data), media.corrupted(data), b"", data * 30]))
            filename = draw(st.sampled_from([name, "", "../../x", "a\x00b.png", "é.png", 'q"uote']))
            files.append(("file", filename, draw(st.sampled_from(["", "image/png", "text/html"])), data))
            if draw(st.integers(0, 5)) == 0:
                files.append(files[0])  # the field twice
        return multipart(fields, files), f"multipart/form-data; boundary={BOUNDARY}"
    if kind == 3:  # JSON
        if draw(st.booleans()):
            return json.dumps({"metadata": draw(JSON_VALUES)}).encode(), "application/json"
        return json.dumps(draw(JSON_VALUES)).encode(), "application/json"
    if kind == 4:  # a verb body
        value = draw(st.one_of(
            st.fixed_dictionaries({"video": st.sampled_from(["/fz/v.webm", "/fz/a.jpg", "/nope", "", "/fz/dir/",
                                                             f"/fz/e/http://127.0.0.1:{world.port}/img.png"])},
                                  optional={"every": st.one_of(st.floats(allow_nan=FUZZ_NON_FINITE_VERBS,
                                                                         allow_infinity=FUZZ_NON_FINITE_VERBS),
                                                               st.integers(-2, 5), st.text(max_size=3))}),
            st.fixed_dictionaries({"similar": st.fixed_dictionaries(
                {"by": st.sampled_from(["vec", "nope", ""])},
                optional={"to": st.sampled_from(["/fz/vec/0", "/fz/vec/a", "/nope", "/fz/a.jpg"]),
                          "vector": st.lists(st.one_of(st.floats(-5, 5), st.integers(-5, 5), st.text(max_size=2)),
                                             max_size=3),
                          "limit": st.one_of(st.integers(-3, 20), st.text(max_size=3))})}),
            JSON_VALUES))
        return json.dumps(value).encode(), draw(st.sampled_from(["application/x-www-form-urlencoded",
                                                                 "application/json", ""]))
    if kind == 5:  # raw content
        data = draw(st.one_of(st.sampled_from(sorted(world.media)).map(world.media.get),
                              st.binary(min_size=1, max_size=2048)))
        return data, draw(st.one_of(st.none(), CONTENT_TYPES))
    return draw(st.binary(min_size=1, max_size=256)), draw(CONTENT_TYPES)


HEADERS = st.fixed_dictionaries({}, optional={
    "HTTP_RANGE": st.one_of(st.sampled_from(["bytes=0-0", "bytes=-1", "bytes=5-", "bytes=0-1,3-4", "bytes=abc",
                                             "bytes=99999999999999999999-", "bytes=-0", "bytes=10-5",
                                             "bytes=-99999999999999999999", "items=0-1", "bytes= 0-1"]),
                            st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20)),
    "HTTP_IF_NONE_MATCH": st.sampled_from(["*", '"x"', 'W/"x"', "x", '"', "", '"a", W/"b"']),
    "HTTP_IF_MODIFIED_SINCE": st.sampled_from(["Sat, 29 Oct 1994 19:43:31 GMT", "Fri, 31 Dec 9999 23:59:59 GMT",
                                               "yesterday", "", "Thu, 01 Jan 1970 00:00:00 GMT"]),
    "HTTP_IF_RANGE": st.sampled_from(['"x"', "Sat, 29 Oct 1994 19:43:31 GMT", "garbage"]),
    "REMOTE_ADDR": st.sampled_from(["10.0.0.7", "::1", "not-an-ip", "127.0.0.1"]),
    "HTTP_X_FORWARDED_FOR": st.just("127.0.0.1"),
    "HTTP_TRANSFER_ENCODING": st.just("chunked"),
    "HTTP_ACCEPT": st.sampled_from(["*/*", "text/html", "application/json", "image/webp"]),
})
AUTHORIZATION = st.one_of(
    st.just(VALID_TOKEN),
    st.sampled_from([None, "Token nope", "Token", "Token a b", "Bearer x", "Basic Zm9vOmJhcg==", "token " + "f" * 40,
                     "", "Token \x7f", VALID_TOKEN + " extra"]))
METHODS = st.sampled_from(["GET"] * 6 + ["HEAD"] * 2 + ["POST"] * 3 + ["PUT"] * 3 + ["DELETE", "PATCH", "OPTIONS",
                                                                                 "TRACE", "PROPFIND"])


@st.composite
def requests(draw, world):
    method = draw(METHODS)
    path = draw(paths(world))
    query = draw(queries()) if method in ("GET", "HEAD") or draw(st.integers(0, 4)) == 0 else ""
    body, content_type = (b"", None)
    if method not in ("GET", "HEAD") or draw(st.integers(0, 6)) == 0:
        body, content_type = draw(bodies(world, path))
    headers = draw(HEADERS)
    authorization = draw(AUTHORIZATION)
    if authorization is not None:
        headers["HTTP_AUTHORIZATION"] = authorization
    truncate_to = None
    if body and draw(st.integers(0, 9)) == 0:
        truncate_to = draw(st.integers(0, len(body) - 1))
    return Request(method, path, query, body, content_type, headers, truncate_to)


# ---------------------------------------------------------------- sending and judging


class Failure(AssertionError):
    pass


def send(client, request, token):
    extra = dict(request.headers)
    if VALID_TOKEN in extra.get("HTTP_AUTHORIZATION", ""):
        extra["HTTP_AUTHORIZATION"] = extra["HTTP_AUTHORIZATION"].replace(VALID_TOKEN, f"Token {token}")
    target = request.target()
    extra["RAW_URI"] = target
    if request.content_type is not None and not request.body:
        extra["CONTENT_TYPE"] = request.content_type
    if request.truncate_to is not None:
        extra["CONTENT_LENGTH"] = str(request.truncate_to)
    started = time.monotonic()
    try:
        response = client.generic(request.method, target, request.body,
                                  content_type=request.content_type or "", **extra)
        data = media.payload(response)
    except Exception as exc:  # the view raised: Django would answer 500
        raise Failure(f"{request!r} raised {exc.__class__.__name__}: {exc}") from exc
    return response, data, time.monotonic() - started


def judge(request, response, data, elapsed, forbidden):
    """The list of problems with one response (empty when it is fine)."""
    problems = []
    status = response.status_code
    admin = request.path.startswith("/_admin")
    if status == 500 or status not in ALLOWED_STATUSES:
        problems.append(f"status {status}")
    if request.method == "HEAD" and data:
        problems.append("HEAD response with a body")
    if status >= 400 and not admin:
        if response.get("Content-Type") != "application/json":
            problems.append(f"error with Content-Type {response.get('Content-Type')!r}")
        if request.method != "HEAD":
            try:
                document = json.loads(data)
            except ValueError:
                problems.append(f"error body is not JSON: {data[:200]!r}")
            else:
                if not (isinstance(document, dict) and set(document) == {"error", "detail"}
                        and all(isinstance(value, str) and value for value in document.values())):
                    problems.append(f"error body is not {{error, detail}}: {document!r:.200}")
    if status >= 400:
        for text in forbidden:
            if text.encode() in data:
                problems.append(f"error body shows {text[:30]!r}")
    if response.get("X-Content-Type-Options") != "nosniff":
        problems.append("no X-Content-Type-Options: nosniff")
    content_type = (response.get("Content-Type") or "").lower()
    active = content_type.split(";")[0].strip().startswith(ACTIVE_TYPES) or content_type.split(";")[0].endswith("+xml")
    if status in (200, 206) and active and not admin and "sandbox" not in response.get("Content-Security-Policy", ""):
        problems.append(f"{content_type} served without CSP sandbox")
    if elapsed > SLOW_SECONDS:
        problems.append(f"took {elapsed:.1f} s")
    return problems


def fuzz(client, world, token, forbidden, max_examples, stats, database=True):
    extra = {} if database else {"database": None}  # the long run must not replay the last failure forever

    @hsettings(max_examples=max_examples, deadline=None, print_blob=True, **extra,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much, HealthCheck.large_base_example])
    @given(st.lists(requests(world), min_size=1, max_size=3))
    def run(batch):
        stats["examples"] += 1
        with transaction.atomic():
            try:
                for request in batch:
                    response, data, elapsed = send(client, request, token)
                    stats["requests"] += 1
                    stats[f"status {response.status_code}"] += 1
                    stats[f"{request.method} {response.status_code}"] += 1
                    if "apply=" in request.query:
                        operation = request.query.split("apply=", 1)[1].split("&", 1)[0]
                        stats[f"apply={operation[:20]} {response.status_code}"] += 1
                    stats["seconds"] += elapsed
                    problems = judge(request, response, data, elapsed, forbidden)
                    if problems:
                        raise Failure(f"{request!r} -> {response.status_code}: {'; '.join(problems)}")
            finally:
                transaction.set_rollback(True)

    run()


def test_fuzz_http_api(api, world, token, settings):
    """No request built from random methods, paths, bodies, headers and queries gives a 500."""
    assert not settings.DEBUG
    forbidden = media.forbidden_texts(settings, strict=False)
    run_for_budget(lambda database: fuzz(api.client, world, token, forbidden, MAX_EXAMPLES, world.stats,
                                         database=database), world.stats)


def run_for_budget(run, stats):
    """``run(database=True)`` once; or, with ``ISTORE_FUZZ_SECONDS`` (the long run), fresh
    hypothesis runs without the example database until the budget is spent, each one failure
    at most (shrunk), every distinct failure collected. Writes ``ISTORE_FUZZ_REPORT`` when set,
    then fails on any failure."""
    budget = float(os.environ.get("ISTORE_FUZZ_SECONDS") or 0)
    started = time.monotonic()
    failures = []
    if not budget:
        run(True)
    while budget and time.monotonic() - started < budget:
        try:
            run(False)  # the long run must not replay the last failure forever
        except Exception as exc:  # noqa: BLE001 - collect and go on
            for one in getattr(exc, "exceptions", None) or [exc]:  # hypothesis groups distinct failures
                failures.append(f"{one.__class__.__name__}: {one}"[:3000])
        stats["runs"] += 1
    report = os.environ.get("ISTORE_FUZZ_REPORT")
    if report:
        with open(report, "w") as file:
            json.dump({"seconds": round(time.monotonic() - started, 1), "stats": dict(stats),
                       "failures": failures}, file, indent=2)
    assert not failures, "\n\n".join(failures)
    assert stats["requests"] >= stats["examples"] > 0


# ---------------------------------------------------------------- the description itself


def test_schema_is_served_as_json(client, db):
    response = client.get("/_schema/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    document = json.loads(response.content)
    assert document["openapi"].startswith("3.")
    assert {"/{key}", "/{dir}_search", "/{dir}_expand", "/{dir}_create_index"} <= set(document["paths"])


def test_schema_is_valid_openapi(client, db):
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(json.loads(client.get("/_schema/").content))


def test_schema_describes_every_operation_and_listing_parameter(client, db):
    from processing.operations import REGISTRY

    document = json.loads(client.get("/_schema/").content)
    key_path = document["paths"]["/{key}"]
    assert {"get", "head", "post", "put", "delete"} <= set(key_path)
    parameters = {p["name"]: p for p in key_path["get"]["parameters"]}
    assert {"key", "apply", "meta", "limit", "after", "delimiter", "format", "quality", "Range",
            "If-None-Match"} <= set(parameters)
    assert set(parameters["apply"]["schema"]["enum"]) == set(REGISTRY)
    for spec in REGISTRY.values():
        for param in spec.params:
            assert param.name in parameters, f"apply={spec.name}'s parameter {param.name} is not described"
    error = document["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"error", "detail"}
    assert key_path["post"]["security"] == [{"token": []}]


def test_schema_is_read_only(client, db):
    response = client.post("/_schema/", {"metadata": "{}"})
    assert response.status_code == 405
    assert json.loads(response.content)["error"] == "method_not_allowed"


# ---------------------------------------------------------------- what the fuzz found (fixed; kept as tests)


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": Infinity}', '{"a": -Infinity}', '{"a": 1e400}',
                                  '{"a": [1, {"b": NaN}]}'])
def test_non_finite_numbers_in_metadata_are_400(api, text):
    from objects.models import Item

    client = api.client._client  # Django's own client under the raw-URI wrapper
    client.raise_request_exception = False
    for response in (client.post("/found/k", {"metadata": text}),
                     client.post("/found/k", f'{{"metadata": {text}}}', content_type="application/json")):
        assert response.status_code == 400, (response.status_code, response.content[:200])
        assert json.loads(response.content)["error"] in ("invalid_metadata", "invalid_json")
    assert not Item.objects.filter(key="/found/k").exists()


@pytest.mark.parametrize("every", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_expand_with_a_non_finite_every_is_400(api, every):
    client = api.client._client
    client.raise_request_exception = False
    response = client.post("/found/_expand", f'{{"video": "/found/v.webm", "every": {every}}}',
                           content_type="application/json")
    assert response.status_code == 400, (response.status_code, response.content[:200])


@pytest.mark.parametrize("text", ['{"a": "\\ud800"}', '{"\\udfff": 1}'])
def test_lone_surrogates_in_metadata_are_400(api, text):
    client = api.client._client
    client.raise_request_exception = False
    response = client.post("/found/k", {"metadata": text})
    assert response.status_code == 400, (response.status_code, response.content[:200])


def test_head_on_a_directory_sends_request_finished_once(api):
    from django.core.signals import request_finished

    assert api.post("/found/dir/a", {"a": 1}).status_code == 201
    calls = []

    def count(**kwargs):
        calls.append(kwargs)

    request_finished.connect(count)
    try:
        response = api.head("/found/dir/")
    finally:
        request_finished.disconnect(count)
    assert response.status_code == 200
    assert len(calls) == 1, f"request_finished sent {len(calls)} times for one request"
