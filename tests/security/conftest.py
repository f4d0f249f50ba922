"""
Fixtures for the security tests: tokens, hostile media built in memory, a
tiny local origin, and memory measurements read from /proc (no psutil).

Everything hostile is made here, from a few bytes, so the tests need no
fixtures on disk and show exactly what each file is.
"""
import io
import os
import resource
import struct
import subprocess
import sys
import tempfile
import zlib

import pytest
from django.contrib.auth.models import User
from PIL import Image, ImageDraw
from rest_framework.authtoken.models import Token

from tests.servers import LocalServer, unavailable

MiB = 1024 * 1024


# ---------------------------------------------------------------- access


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Admin users are created with passwords here; the default hasher costs ~0.3 s each."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def token(db):
    """A valid API token (its user is active, not staff)."""
    user = User.objects.create_user("sec-writer")
    return Token.objects.create(user=user).key


@pytest.fixture
def auth(token):
    """Extra request headers that authenticate a write."""
    return {"HTTP_AUTHORIZATION": f"Token {token}"}


# ---------------------------------------------------------------- images


def picture(size=(64, 48), mode="RGB"):
    """An image with some structure (so encoders do real work)."""
    image = Image.new(mode, size, (30, 90, 160) if mode == "RGB" else (30, 90, 160, 200))
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.ellipse([width // 4, height // 4, width * 3 // 4, height * 3 // 4], fill=(250, 200, 20))
    draw.line([0, 0, width, height], fill=(0, 0, 0), width=2)
    return image


def encode(image, fmt, **options):
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def jpeg(size=(64, 48)):
    return encode(picture(size), "JPEG", quality=85)


def png(size=(64, 48)):
    return encode(picture(size, "RGBA"), "PNG")


def gif(size=(64, 48)):
    return encode(picture(size).convert("P"), "GIF")


def webp(size=(64, 48)):
    return encode(picture(size), "WEBP", quality=80)


def truncated(data, keep=0.5):
    """The first ``keep`` of the bytes: a download cut off mid-file."""
    return data[: max(1, int(len(data) * keep))]


def corrupted(data, start=0.3, length=64):
    """The bytes with a run in the middle overwritten: headers intact, entropy-coded data garbage."""
    at = int(len(data) * start)
    garbage = bytes((index * 97 + 13) % 256 for index in range(length))
    return data[:at] + garbage + data[at + length:]


def _png_chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_declaring(width, height, rows=1):
    """A tiny, valid-looking PNG whose header declares ``width`` x ``height`` pixels (8-bit grey).

    Only ``rows`` rows of zeros are compressed in: a decompression bomb is
    "huge declared size, tiny file".
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = (b"\x00" + b"\x00" * min(width, 1 << 16)) * rows
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(raw, 9))
            + _png_chunk(b"IEND", b""))


def png_bomb_within_limit(side=7000):
    """A real, complete RGB PNG of side x side zeros (49 Mpx < the 50 Mpx default): ~150 KB on disk,
    ~147 MB decoded. The worst an allowed source can do to memory."""
    row = b"\x00" + b"\x00" * (side * 3)
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(row) for _ in range(side)]
    parts.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", b"".join(parts))
            + _png_chunk(b"IEND", b""))


def gif_declaring(width, height):
    """A GIF whose logical screen and one image descriptor declare width x height, with 1 pixel of data."""
    header = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    descriptor = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0)
    data = b"\x02\x02\x44\x01\x00"  # LZW min code size 2, one tiny block
    return header + descriptor + data + b"\x3b"


def animated_gif(frames=3000, size=(32, 32)):
    """An animated GIF with ``frames`` frames (each a little different, so none are merged)."""
    images = []
    for index in range(frames):
        image = Image.new("P", size, index % 200)
        image.putpixel((index % size[0], (index // size[0]) % size[1]), 255)
        images.append(image)
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=20, loop=0, optimize=False)
    return out.getvalue()


SVG_WITH_SCRIPT = (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10" '
                   b'onload="alert(document.cookie)"><script>alert(document.domain)</script>'
                   b'<rect width="10" height="10"/></svg>\n')
HTML_WITH_SCRIPT = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>\n"
XHTML_IN_XML = (b'<?xml version="1.0"?>\n<feed xmlns:h="http://www.w3.org/1999/xhtml">'
                b'<h:script>alert(document.domain)</h:script></feed>\n')


def gif_html_polyglot():
    """Bytes that are both a GIF (valid header and image) and an HTML page with a script."""
    return gif((8, 8)) + b"<html><script>alert(document.domain)</script></html>"


def jpeg_zip_polyglot():
    """A JPEG with a ZIP archive appended (readers find the ZIP's central directory at the end)."""
    import zipfile

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("index.html", HTML_WITH_SCRIPT)
    return jpeg() + archive.getvalue()


# ---------------------------------------------------------------- video


def ffmpeg_exe():
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # noqa: BLE001 - any failure means "no ffmpeg here"
        return None


def webm(seconds=3, size="160x120"):
    """A small WebM made with the ffmpeg imageio-ffmpeg ships (None when there is none)."""
    binary = ffmpeg_exe()
    if binary is None:
        return None
    with tempfile.TemporaryDirectory() as temp:
        path = os.path.join(temp, "clip.webm")
        subprocess.run([binary, "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                        f"testsrc=duration={seconds}:size={size}:rate=10", "-c:v", "libvpx", "-b:v", "200k",
                        path], check=True, timeout=60)
        with open(path, "rb") as file:
            return file.read()


@pytest.fixture(scope="session")
def small_webm():
    data = webm()
    if data is None:
        unavailable("no ffmpeg binary (imageio-ffmpeg) on this machine")
    return data


# ---------------------------------------------------------------- memory


def _status_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def rss_bytes():
    """Resident set size of this process now."""
    return _status_kib("VmRSS") * 1024


def reset_peak_rss():
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS; False when not permitted."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes():
    """Peak resident set size of this process since the last reset (or since start)."""
    try:
        return _status_kib("VmHWM") * 1024
    except (OSError, LookupError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# Runs one ffmpeg and appends its peak RSS (KiB) to the file argv[1]. A small
# process of its own is needed: a child spawned from pytest itself reports
# pytest's own peak (vfork shares the parent's memory until exec).
_MEASURED_RUN = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[2:])
with open(sys.argv[1], "a") as report:
    report.write(f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}\\n")
sys.exit(done.returncode if done.returncode >= 0 else 128 - done.returncode)
"""


@pytest.fixture
def ffmpeg_peak_rss(monkeypatch, tmp_path):
    """Every ffmpeg run by istore during the test is measured; call for the
    largest peak RSS (bytes) of any of them."""
    from processing.video import runner

    report = tmp_path / "ffmpeg-peaks"
    original = runner._run

    def measured(args, deadline):
        return original([sys.executable, "-c", _MEASURED_RUN, str(report), *args], deadline)

    monkeypatch.setattr(runner, "_run", measured)

    def peak():
        lines = report.read_text().split() if report.exists() else []
        assert lines, "no ffmpeg ran"
        return max(int(line) for line in lines) * 1024

    return peak


class MemoryWatch:
    """Peak RSS growth of this process over a block: ``with MemoryWatch() as watch: ...; watch.growth``."""

    def __enter__(self):
        self.exact = reset_peak_rss()
        self.before = rss_bytes()
        return self

    def __exit__(self, *exc):
        self.peak = peak_rss_bytes()
        self.growth = max(0, self.peak - self.before) if self.exact else None
        return False


# ---------------------------------------------------------------- a local origin


class TinyOrigin:
    """An HTTP origin on 127.0.0.1 serving fixed bytes per path (404 otherwise)."""

    def __init__(self, routes):
        self.routes = dict(routes)  # path -> (status, content_type, body)
        self.http = LocalServer(self._handle, poll_interval=0.05)
        self.port = self.http.port

    def _handle(self, request):
        status, content_type, body = self.routes.get(request.path, (404, "text/plain", b"no such path"))
        try:
            request.send_response(status)
            request.send_header("Content-Type", content_type)
            request.send_header("Content-Length", str(len(body)))
            request.send_header("Cache-Control", "max-age=60")
            request.end_headers()
            request.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            request.close_connection = True

    def url(self, path):
        return self.http.url(path)

    def close(self):
        self.http.close()


# ---------------------------------------------------------------- responses


def payload(response):
    """The whole body of a response, streamed or not (consuming it runs any generator)."""
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def content_files(settings):
    """Every blob in the local content storage (to prove a refused upload left none behind)."""
    location = settings.STORAGES["default"].get("OPTIONS", {}).get("location")
    if not location or not os.path.isdir(location):
        return []
    return sorted(os.path.join(folder, name) for folder, _, names in os.walk(location) for name in names)


def forbidden_texts(settings, strict=True):
    """Strings no response body may show: the secret, a traceback, local paths.

    ``strict`` adds the temp directory prefix (only where the test controls
    every key, since a key may legitimately contain "/tmp/").
    """
    texts = [settings.SECRET_KEY, "Traceback (most recent call last)", 'File "/']
    texts.append(str(settings.ISTORE_DATA_DIR))
    texts.append(str(settings.ISTORE_CACHE_DIR))
    location = settings.STORAGES["default"].get("OPTIONS", {}).get("location")
    if location:
        texts.append(str(location))
    if strict:
        texts.append(tempfile.gettempdir() + "/")
    return [text for text in texts if text]
