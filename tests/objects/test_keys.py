"""Keys: validation, the embedded-source rule and the self:// codec (§1)."""
import pytest

from objects.errors import BadRequest
from objects import keys


@pytest.mark.parametrize(
    "key, directory, source",
    [
        ("/path/sample/http://video.webmfiles.org/elephants-dream.webm", "/path/sample/",
         "http://video.webmfiles.org/elephants-dream.webm"),
        ("/abc/http://localhost:9999/path/http://example.com/foo/bar.jpg", "/abc/",
         "http://localhost:9999/path/http://example.com/foo/bar.jpg"),
        ("/path/to/file:///picts/foo.jpg", "/path/to/", "file:///picts/foo.jpg"),
        ("/abc/self://def/efg.jpg", "/abc/", "self://def/efg.jpg"),
        ("/photos/cat.jpg", "/photos/", None),
        ("/path/sample/", "/path/sample/", None),
    ],
)
def test_parse_key_splits_dir_and_source(key, directory, source):
    parsed = keys.parse_key(key)
    assert (parsed.dir, parsed.source) == (directory, source), f"wrong split of {key}"


@pytest.mark.parametrize(
    "directory, target, expected",
    [
        ("/abc/", "def/efg.jpg", ("/abc/def/efg.jpg", "")),
        ("/abc/", "./def/efg.jpg", ("/abc/def/efg.jpg", "")),
        ("/abc/", "/def/efg.jpg", ("/def/efg.jpg", "")),
        ("/d/", "file:///img/x.jpg?apply=resize&w=100", ("/d/file:///img/x.jpg", "apply=resize&w=100")),
        ("/d/", "self://file:///img/x.jpg%3Fapply=resize&w=100",
         ("/d/self://file:///img/x.jpg?apply=resize&w=100", "")),
    ],
)
def test_resolve_self(directory, target, expected):
    assert keys.resolve_self(directory, target) == expected


def test_escape_for_self_round_trips_through_resolve():
    key = "/v/100% real?.webm"
    assert keys.resolve_self("/x/", "/" + keys.escape_for_self(key)[1:])[0] == key


@pytest.mark.parametrize("bad", ["relative", "/a\x00b", "/a\x1fb", "/a\x85b", "/" + "a" * 4096])
def test_invalid_keys_are_refused(bad):
    with pytest.raises(BadRequest):
        keys.validate_key(bad)


def test_key_of_4096_bytes_is_valid():
    key = "/" + "é" * 2047 + "a"
    assert len(key.encode()) == 4096
    assert keys.validate_key(key) == key


def test_invalid_utf8_request_target_is_refused():
    with pytest.raises(BadRequest):
        keys.key_from_request({"RAW_URI": "/a%FF"}, "/a%FF")


def test_request_target_is_percent_decoded_once():
    assert keys.key_from_request({"RAW_URI": "/a%253F/b%3Fc?apply=x"}, "") == "/a%3F/b?c"


@pytest.mark.parametrize("path, expected", [("/a/b/_search", ("/a/b/", "_search")), ("/_expand", ("/", "_expand")),
                                            ("/a/_searchx", ("/a/_searchx", None))])
def test_split_verb(path, expected):
    assert keys.split_verb(path) == expected


def test_prefix_upper_bound_bounds_exactly_the_subtree():
    bound = keys.prefix_upper_bound("/a/")
    for inside in ["/a/", "/a/\U0010ffff", "/a/~"]:
        assert "/a/" <= inside < bound
    for outside in ["/a0", "/a1", "/b/"]:
        assert not ("/a/" <= outside < bound)


@pytest.mark.parametrize("prefix, bound", [("/a/", "/a0"), ("/photos/ca", "/photos/cb"), ("/a\ud7ff", "/a\ue000"),
                                           ("/a\U0010ffff", "/b"), ("\U0010ffff", None), ("", None)])
def test_prefix_upper_bound_of_any_prefix(prefix, bound):
    assert keys.prefix_upper_bound(prefix) == bound
