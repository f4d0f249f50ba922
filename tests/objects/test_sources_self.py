"""self sources: relative, ./ and absolute forms, nesting levels, depth and cycles (§1)."""
import io

import pytest
from PIL import Image

from objects.errors import LoopDetected
from objects import reading
from objects.sources import Context
from objects.sources.self import SelfResolver
from tests.conftest import body
from tests.objects.conftest import content


def png(width=400, height=200, color=(200, 30, 60)):
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def get_registered(api, key, query="", **extra):
    assert api.post(key, {}).status_code in (200, 201), key
    return api.get(key, query, **extra)


def image_size(data):
    return Image.open(io.BytesIO(data)).size


@pytest.mark.parametrize("form", ["self://def/efg.bin", "self://./def/efg.bin", "self:///abc/def/efg.bin"])
def test_relative_dot_and_absolute_forms_read_the_same_key(api, form):
    api.upload("/abc/def/efg.bin", b"target bytes", content_type="application/octet-stream")
    response = get_registered(api, f"/abc/{form}")
    assert response.status_code == 200, body(response)
    assert content(response) == b"target bytes"


def test_absolute_form_leaves_the_directory(api):
    api.upload("/def/efg.bin", b"elsewhere", content_type="application/octet-stream")
    assert content(get_registered(api, "/abc/self:///def/efg.bin")) == b"elsewhere"


def test_target_need_not_be_registered(api, file_root):
    (file_root / "x.bin").write_bytes(b"from a file")
    response = get_registered(api, f"/d/self://file://{file_root}/x.bin")
    assert response.status_code == 200, body(response)
    assert content(response) == b"from a file"


def test_target_with_nothing_behind_it_is_404(api):
    response = get_registered(api, "/d/self://nothing-here")
    assert response.status_code == 404
    assert body(response)["error"] == "no_such_key"


def test_unknown_scheme_in_target_is_400_naming_it(api):
    response = get_registered(api, "/d/self://gopher://example.com/x")
    assert response.status_code == 400
    assert "gopher" in body(response)["detail"]


def raw_get_registered(client, path):
    """POST then GET a raw request path, exactly as curl sends it (decoded once by the server)."""
    key_path = path.split("?", 1)[0]
    assert client.post(key_path, {"metadata": "{}"}).status_code in (200, 201), key_path
    return client.get(path)


def test_three_nesting_levels_give_the_same_processed_image(api, client, file_root):
    """§1's example, as curl sends it: one more level of percent-encoding per level."""
    (file_root / "x.png").write_bytes(png())
    img = f"file://{file_root}/x.png"
    level1 = raw_get_registered(client, f"/d/{img}?apply=resize&w=100")
    level2 = raw_get_registered(client, f"/d/self://{img}%3Fapply=resize&w=100")
    level3 = raw_get_registered(client, f"/d/self://self://{img}%253Fapply=resize&w=100")
    for response in (level1, level2, level3):
        assert response.status_code == 200, body(response)
    results = [content(r) for r in (level1, level2, level3)]
    assert image_size(results[0]) == (100, 50)
    assert results[0] == results[1] == results[2], "all three levels must return the same bytes"


def test_levels_chain_operations(api, client, file_root):
    (file_root / "x.png").write_bytes(png())
    response = raw_get_registered(client, f"/d/self://file://{file_root}/x.png%3Fapply=resize&w=100?apply=flipH")
    assert response.status_code == 200, body(response)
    assert image_size(content(response)) == (100, 50), "the outer operation runs on the inner result"


def test_depth_limit_is_508(api, settings, file_root, tmp_path):
    settings.ISTORE_MAX_SELF_DEPTH = 2
    (file_root / "x.bin").write_bytes(b"x")
    ok = get_registered(api, f"/d/self://self://file://{file_root}/x.bin")
    assert ok.status_code == 200, body(ok)
    response = get_registered(api, f"/d/self://self://self://file://{file_root}/x.bin")
    assert response.status_code == 508
    assert "ISTORE_MAX_SELF_DEPTH" in body(response)["detail"]


def test_default_depth_limit_is_8(api, file_root):
    (file_root / "x.bin").write_bytes(b"x")
    assert get_registered(api, "/d/" + "self://" * 8 + f"file://{file_root}/x.bin").status_code == 200
    assert get_registered(api, "/e/" + "self://" * 9 + f"file://{file_root}/x.bin").status_code == 508


def test_cycle_is_508():
    """Key strings cannot form a cycle on their own; the resolver still refuses one."""
    context = Context(key="/a/self://b", dir="/a/", depth=1, chain=("/a/b", "/a/self://b"), read=reading.read)
    with pytest.raises(LoopDetected, match="cycle"):
        SelfResolver().open("self://b", context)


def test_query_reaches_the_innermost_level(api, file_root, monkeypatch):
    seen = []
    real = reading._parse_operation

    def spy(query, *args):
        seen.append(query.get("apply"))
        return real(query, *args)

    monkeypatch.setattr(reading, "_parse_operation", spy)
    (file_root / "x.png").write_bytes(png())
    raw_get_registered(api.client, f"/d/self://self://file://{file_root}/x.png%253Fapply=grayscale")
    assert seen == [None, None, "grayscale"]
