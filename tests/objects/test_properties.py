"""Property tests (hypothesis) for keys, merge patch and listing."""
import json
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from objects.errors import BadRequest
from objects import keys
from objects.writing import merge_patch

segment = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/"),
                  min_size=0, max_size=6)
plain_key = st.lists(segment, min_size=1, max_size=5).map(lambda parts: "/" + "/".join(parts))
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)
json_object = st.dictionaries(st.text(max_size=3), json_value, max_size=4)


@given(st.binary(max_size=64))
def test_any_request_target_gives_its_key_or_a_400(raw):
    try:
        key = keys.key_from_request({"RAW_URI": "/" + quote_from_bytes(raw)}, "")
    except BadRequest:
        return
    assert key.encode("utf-8") == b"/" + raw, "a key is the path percent-decoded exactly once"


@given(plain_key, st.sampled_from(["http", "https", "file", "self"]), segment)
def test_source_never_escapes_its_directory(directory_key, scheme, rest):
    directory = directory_key.rstrip("/") + "/"
    key = f"{directory}{scheme}://{rest}"
    parsed = keys.parse_key(key)
    assert key.startswith(parsed.dir), "the dir of a key is always a prefix of it"
    assert parsed.dir + parsed.source == key
    assert parsed.dir.endswith("/")


@given(plain_key)
def test_dir_is_a_prefix_ending_in_slash(key):
    parsed = keys.parse_key(key)
    assert key.startswith(parsed.dir) and parsed.dir.endswith("/")


@given(plain_key)
def test_escape_for_self_round_trips(key):
    assert keys.resolve_self("/x/", keys.escape_for_self(key))[0] == key


@given(json_object, json_object)
def test_merge_patch_is_idempotent(target, patch):
    once = merge_patch(target, patch)
    assert merge_patch(once, patch) == once, "applying a merge patch twice must change nothing more"


@given(json_object, json_object)
def test_merge_patch_does_not_mutate_inputs(target, patch):
    before = (json.dumps(target, sort_keys=True), json.dumps(patch, sort_keys=True))
    merge_patch(target, patch)
    assert before == (json.dumps(target, sort_keys=True), json.dumps(patch, sort_keys=True))


@given(json_object)
def test_merge_with_null_removes(target):
    patch = {name: None for name in target}
    assert merge_patch(target, patch) == {}


def store_only(keys_):
    """Make the store hold exactly ``keys_``."""
    from objects.models import Item

    Item.objects.all().delete()
    items = []
    for key in keys_:
        item = Item(metadata={})
        item.set_key(key)
        items.append(item)
    Item.objects.bulk_create(items)


@pytest.mark.django_db
@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys_=st.sets(plain_key.map(lambda k: "/p" + k), min_size=0, max_size=25), limit=st.integers(1, 7))
def test_paging_yields_the_sorted_set_once(keys_, limit):
    from objects import listing

    store_only(keys_)
    seen, after = [], None
    while True:
        page, after = listing.page("/p/", limit, after)
        seen += [entry.key for entry in page]
        if after is None:
            break
    expected = sorted((k for k in keys_ if k.startswith("/p/")), key=lambda k: k.encode())
    assert seen == expected


@pytest.mark.django_db
@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys_=st.sets(st.lists(st.sampled_from(["a", "b", "", "é"]), min_size=1, max_size=4)
                     .map(lambda parts: "/p/" + "/".join(parts)), max_size=25), limit=st.integers(1, 5))
def test_delimiter_pages_match_a_reference_fold(keys_, limit):
    from objects import keys as keymod, listing

    store_only(keys_)
    expected = []
    for key in sorted(keys_, key=lambda k: k.encode()):
        rest = key[len("/p/"):]
        entry = key if keymod.dir_of(key) == "/p/" or "/" not in rest else "/p/" + rest.split("/", 1)[0] + "/"
        if not expected or expected[-1] != entry:
            expected.append(entry)
    seen, after = [], None
    while True:
        page, after = listing.page("/p/", limit, after, delimiter="/")
        seen += [listing.entry_key(entry) for entry in page]
        if after is None:
            break
    assert seen == expected
