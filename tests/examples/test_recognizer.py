"""examples/recognizer.py, run as its users run it, against istore under gunicorn with its jobs worker."""
import io
import subprocess
import sys

import pytest
import requests
from PIL import Image

from tests.servers import ROOT

pytestmark = pytest.mark.slow

PHOTOS = ROOT / "tests" / "fixtures" / "photos"


def jpeg(image, quality=90):
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


@pytest.fixture
def istore(gunicorn, tmp_path):
    base, _, _ = gunicorn({"ISTORE_DATA_DIR": str(tmp_path / "store"), "DATABASE_URL": "",
                           "ISTORE_JOBS_WORKERS": "1", "ISTORE_JOBS_POLL": "0.1"}, workers=1)
    return base


def upload(base, key, data):
    answer = requests.put(base + key, data=data, headers={"Content-Type": "image/jpeg"}, timeout=30)
    assert answer.status_code in (200, 201), answer.text


def recognizer(base, *args):
    done = subprocess.run([sys.executable, "examples/recognizer.py", "--url", base, "--dir", "/photos/", "--once",
                           *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"the recognizer failed: {done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture
def photos(istore):
    cat = Image.open(PHOTOS / "chelsea.jpg").convert("RGB")
    upload(istore, "/photos/cat.jpg", jpeg(cat))
    upload(istore, "/photos/cat-small.jpg", jpeg(cat.resize((cat.width // 2, cat.height // 2)), quality=70))
    upload(istore, "/photos/coffee.jpg", (PHOTOS / "coffee.jpg").read_bytes())
    requests.post(istore + "/photos/notes.txt", data={"metadata": '{"note": "no picture here"}'}, timeout=30)
    return istore


def test_the_recognizer_hashes_every_picture_and_finds_the_copy(photos, tmp_path):
    output = recognizer(photos, "--state", str(tmp_path / "seq"), "--query", "/photos/cat.jpg")
    assert "3 picture(s) recognized" in output, output
    assert "index: 3 vectors" in output, f"the index was built as a job and followed to its end: {output}"
    for key in ("/photos/cat.jpg", "/photos/cat-small.jpg", "/photos/coffee.jpg"):
        metadata = requests.get(photos + key, params={"meta": "1"}, timeout=30).json()["metadata"]
        assert len(metadata["phash_vec"]) == 64 and len(metadata["phash"]) == 16, f"{key} has no hash: {metadata}"
    nearest = requests.post(photos + "/photos/_search", timeout=30, json={
        "similar": {"to": "/photos/cat.jpg", "by": "phash_vec", "limit": 3}}).json()
    found = [(item["_filepath"], item["_distance"]) for item in nearest]
    assert {key for key, _ in found[:2]} == {"/photos/cat.jpg", "/photos/cat-small.jpg"}, found
    assert found[1][1] < 0.1 < found[2][1], f"the resized copy is a near-duplicate, the other photo is not: {found}"


def test_a_restarted_recognizer_takes_only_what_arrived_since(photos, tmp_path):
    state = tmp_path / "seq"
    recognizer(photos, "--state", str(state))
    upload(photos, "/photos/coffee-copy.jpg", (PHOTOS / "coffee.jpg").read_bytes())
    output = recognizer(photos, "--state", str(state))
    assert "1 picture(s) recognized" in output, f"only the new picture is hashed: {output}"
    metadata = requests.get(photos + "/photos/coffee-copy.jpg", params={"meta": "1"}, timeout=30).json()["metadata"]
    assert len(metadata["phash_vec"]) == 64


def test_its_own_writes_do_not_feed_it(photos, tmp_path):
    state = tmp_path / "seq"
    recognizer(photos, "--state", str(state))
    output = recognizer(photos, "--state", str(state))
    assert "recognized" not in output, f"the vectors it wrote are not pictures to hash again: {output}"
