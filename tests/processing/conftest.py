"""Fixtures for the processing tests: small images of known pixels, written to tmp files."""
import io

import numpy as np
import pytest
from django.http import QueryDict
from PIL import Image

from processing.operations import parse_operation


def save(path, im, fmt, **options):
    """Write ``im`` to ``path`` as ``fmt``; returns the path as a string."""
    im.save(path, fmt, **options)
    return str(path)


def decode(data):
    """Bytes -> (loaded PIL image, numpy array)."""
    im = Image.open(io.BytesIO(data))
    im.load()
    return im, np.asarray(im)


def run(query, path, content_type="application/octet-stream"):
    """Parse ``query`` (a query string) and run it on ``path``."""
    return parse_operation(QueryDict(query)).run(path, content_type)


@pytest.fixture
def known():
    """A 12x8 RGB array of seeded random pixels (every value distinct enough for exact checks)."""
    return np.random.default_rng(1234).integers(0, 256, size=(8, 12, 3), dtype=np.uint8)


@pytest.fixture
def known_png(tmp_path, known):
    return save(tmp_path / "known.png", Image.fromarray(known, "RGB"), "PNG")


@pytest.fixture
def ramp():
    """A 16x16 RGB array whose R channel walks all of 0..255 (G reversed, B scrambled): point-op tables."""
    i = np.arange(256, dtype=np.uint8).reshape(16, 16)
    return np.stack([i, 255 - i, (i.astype(np.int32) * 7 % 256).astype(np.uint8)], axis=-1)


@pytest.fixture
def ramp_png(tmp_path, ramp):
    return save(tmp_path / "ramp.png", Image.fromarray(ramp, "RGB"), "PNG")


@pytest.fixture
def photo_jpeg(tmp_path):
    """A 1920x1080 JPEG with smooth content and a little noise."""
    y, x = np.mgrid[0:1080, 0:1920]
    rgb = np.stack([x * 255 // 1919, y * 255 // 1079, (x + y) * 255 // 2998], axis=-1).astype(np.uint8)
    return save(tmp_path / "photo.jpg", Image.fromarray(rgb, "RGB"), "JPEG", quality=90)
