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
