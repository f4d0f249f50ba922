"""Fixtures for the feature tests: real photographs (tests/fixtures/photos) and copies of them."""
import io
from pathlib import Path

import pytest
from PIL import Image

PHOTOS = Path(__file__).resolve().parents[2] / "fixtures" / "photos"


@pytest.fixture(scope="session")
def chelsea():
    """A photograph of a cat (JPEG, 451x300)."""
    return str(PHOTOS / "chelsea.jpg")


@pytest.fixture(scope="session")
def coffee():
    """A photograph of a cup of espresso (JPEG, 600x400)."""
    return str(PHOTOS / "coffee.jpg")


def altered(path, tmp_path, name, change, fmt="JPEG", **options):
    """``change(PIL image)`` of the photograph at ``path``, written to ``tmp_path / name``."""
    with Image.open(path) as im:
        out = change(im.convert("RGB"))
    target = tmp_path / name
    out.save(target, fmt, **options)
    return str(target)


def jpeg_bytes(path):
    return Path(path).read_bytes()


def png_bytes(im):
    out = io.BytesIO()
    im.save(out, "PNG")
    return out.getvalue()
