"""file sources: confined to ISTORE_FILE_ROOTS, revalidated by mtime and size (§1, §6)."""
import os

import pytest

from tests.conftest import body
from tests.objects.conftest import content

PAYLOAD = b"file bytes " * 1000


def get_registered(api, key, **extra):
    assert api.post(key, {}).status_code in (200, 201)
    return api.get(key, **extra)


def test_file_source_returns_its_bytes(api, file_root):
    (file_root / "a.bin").write_bytes(PAYLOAD)
    response = get_registered(api, f"/f/file://{file_root}/a.bin")
    assert response.status_code == 200
    assert content(response) == PAYLOAD
    assert response["Content-Length"] == str(len(PAYLOAD))
    assert "Last-Modified" in response and response["ETag"].startswith('"')


def test_localhost_form_and_percent_encoding(api, file_root):
    (file_root / "my cat.txt").write_bytes(b"meow")
    response = get_registered(api, f"/f/file://localhost{file_root}/my%20cat.txt")
    assert response.status_code == 200, body(response)
    assert content(response) == b"meow"
    assert response["Content-Type"].startswith("text/plain")


def test_range_on_file_source(api, file_root):
    (file_root / "v.webm").write_bytes(PAYLOAD)
    response = get_registered(api, f"/f/file://{file_root}/v.webm", HTTP_RANGE="bytes=5-9")
    assert response.status_code == 206
    assert content(response) == PAYLOAD[5:10]


def test_changed_file_is_revalidated_by_mtime_and_size(api, file_root):
    path = file_root / "c.txt"
    path.write_bytes(b"one")
    key = f"/f/file://{path}"
    first = get_registered(api, key)
    path.write_bytes(b"three")
    os.utime(path, (1_000_000_000, 1_000_000_000))
    second = api.get(key)
    assert content(second) == b"three"
    assert first["ETag"] != second["ETag"]


def test_no_roots_means_file_is_disabled(api, settings, tmp_path):
    settings.ISTORE_FILE_ROOTS = []
    (tmp_path / "x.txt").write_bytes(b"x")
    response = get_registered(api, f"/f/file://{tmp_path}/x.txt")
    assert response.status_code == 403
    assert "ISTORE_FILE_ROOTS" in body(response)["detail"]


def test_outside_root_is_403(api, file_root, tmp_path):
    (tmp_path / "secret.txt").write_bytes(b"secret")
    response = get_registered(api, f"/f/file://{tmp_path}/secret.txt")
    assert response.status_code == 403


@pytest.mark.parametrize("escape", ["..", "%2e%2e", "%2E%2E", ".%2e"])
def test_dot_dot_escapes_in_the_key_are_403(api, file_root, tmp_path, escape):
    (tmp_path / "secret.txt").write_bytes(b"secret")
    # The file URL in the key is percent-decoded once more, then resolved.
    response = get_registered(api, f"/f/file://{file_root}/{escape}/secret.txt")
    assert response.status_code == 403, (escape, body(response))


@pytest.mark.parametrize("escape", ["..", "%2e%2e", "%252e%252e"])
def test_dot_dot_escapes_in_the_request_path_are_403(api, client, file_root, tmp_path, escape):
    """Raw request paths, as curl sends them: decoded once into the key, once more as a file URL."""
    (tmp_path / "secret.txt").write_bytes(b"secret")
    path = f"/f/file://{file_root}/{escape}/secret.txt"
    assert client.post(path, {"metadata": "{}"}).status_code in (200, 201)
    response = client.get(path)
    assert response.status_code == 403, body(response)


def test_symlink_out_of_root_is_403(api, file_root, tmp_path):
    (tmp_path / "secret.txt").write_bytes(b"secret")
    (file_root / "link.txt").symlink_to(tmp_path / "secret.txt")
    (file_root / "dirlink").symlink_to(tmp_path)
    assert get_registered(api, f"/f/file://{file_root}/link.txt").status_code == 403
    assert get_registered(api, f"/f/file://{file_root}/dirlink/secret.txt").status_code == 403


def test_symlink_inside_root_is_followed(api, file_root):
    (file_root / "real.txt").write_bytes(b"real")
    (file_root / "alias.txt").symlink_to(file_root / "real.txt")
    response = get_registered(api, f"/f/file://{file_root}/alias.txt")
    assert response.status_code == 200 and content(response) == b"real"


def test_root_given_through_a_symlink(api, settings, tmp_path):
    real = tmp_path / "realroot"
    real.mkdir()
    (real / "a.txt").write_bytes(b"a")
    (tmp_path / "linkroot").symlink_to(real)
    settings.ISTORE_FILE_ROOTS = [str(tmp_path / "linkroot")]
    assert content(get_registered(api, f"/f/file://{tmp_path}/linkroot/a.txt")) == b"a"


def test_prefix_sibling_is_not_inside(api, file_root, tmp_path):
    sibling = tmp_path / "rootx"
    sibling.mkdir()
    (sibling / "a.txt").write_bytes(b"a")
    assert get_registered(api, f"/f/file://{sibling}/a.txt").status_code == 403


def test_missing_file_is_404(api, file_root):
    response = get_registered(api, f"/f/file://{file_root}/nothing.jpg")
    assert response.status_code == 404
    assert body(response)["error"] == "source_not_found"


def test_directory_is_404(api, file_root):
    (file_root / "sub").mkdir()
    assert get_registered(api, f"/f/file://{file_root}/sub").status_code == 404


def test_remote_host_is_403(api, file_root):
    assert get_registered(api, "/f/file://otherhost/etc/passwd").status_code == 403


def test_file_over_limit_is_413(api, file_root, settings):
    settings.ISTORE_MAX_SOURCE_BYTES = 100
    (file_root / "big.bin").write_bytes(PAYLOAD)
    response = get_registered(api, f"/f/file://{file_root}/big.bin")
    assert response.status_code == 413
    assert body(response)["error"] == "source_too_large"
