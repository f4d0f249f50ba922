"""Fixtures for the admin tests: items in the store, images, and admin URLs."""
import io
from urllib.parse import urlencode

import pytest
from PIL import Image, ImageDraw

from objects import keys, writing
from tests.servers import unavailable

ADMIN = "/_admin/objects/item/"


def folder_url(prefix="/", **params):
    return ADMIN + "?" + urlencode({"dir": prefix, **params})


def item_url(item):
    return f"{ADMIN}{item.pk}/change/"


def png(color=(200, 80, 40), size=(320, 240), label=None):
    """A PNG with a colour gradient and a disc, so thumbnails are recognisable."""
    width, height = size
    image = Image.new("RGB", size, color)
    draw = ImageDraw.Draw(image)
    for x in range(0, width, 4):
        shade = tuple(min(255, c + x * 60 // width) for c in color)
        draw.rectangle([x, 0, x + 3, height], fill=shade)
    draw.ellipse([width // 4, height // 4, width * 3 // 4, height * 3 // 4], fill=(250, 240, 220))
    if label:
        draw.text((8, 8), label, fill=(20, 20, 20))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def webm(seconds=4, size="320x240"):
    """A small WebM test-pattern video, made with the ffmpeg that imageio-ffmpeg ships."""
    import subprocess
    import tempfile

    import imageio_ffmpeg

    with tempfile.TemporaryDirectory() as temp:
        path = f"{temp}/clip.webm"
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi",
                        "-i", f"testsrc=duration={seconds}:size={size}:rate=10", "-c:v", "libvpx",
                        "-b:v", "300k", path], check=True, timeout=60)
        with open(path, "rb") as file:
            return file.read()


def register_frames(video_key, seconds, directory=None):
    """Register the frame items ``_expand`` makes for a video (§8), as it names them."""
    directory = directory or keys.dir_of(video_key)
    width = len(str(seconds - 1))
    escaped = keys.escape_for_self(video_key)
    entries = [(f"{directory}self://{escaped}?apply=frame&sec={i:0{width}d}",
                {"timestamp": f"00:00:{i:02d}", "video": video_key}) for i in range(seconds)]
    writing.upsert_many(entries)
    return [key for key, _ in entries]


@pytest.fixture
def put(db):
    """Register a key with metadata through objects.writing (as the API does)."""

    def put(key, metadata=None):
        item, _ = writing.write(key, metadata or {}, replace=True)
        return item

    return put


@pytest.fixture
def frames(db):
    """Register the frame items ``_expand`` would make; return them as Items."""
    from objects.models import Item

    def frames(video_key, seconds, directory=None):
        registered = register_frames(video_key, seconds, directory)
        by_key = {item.key: item for item in Item.objects.filter(key__in=registered)}
        return [by_key[key] for key in registered]

    return frames


INSTALL_HINT = ("No headless Chromium here: install one with "
                "`apt-get update && apt-get install -y chromium chromium-driver` "
                "(and `pip install -r requirements.txt` for selenium) to run the browser tests.")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--no-first-run", "--window-size=1360,1000"]


def _find(*names):
    import shutil

    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium under Selenium, one for the session; skips when there is none."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        unavailable(INSTALL_HINT)
    binary = _find("chromium", "chromium-browser", "google-chrome")
    driver_path = _find("chromedriver")
    if not binary or not driver_path:
        unavailable(INSTALL_HINT)
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    # Given both paths, Selenium never tries to download a browser or driver.
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
