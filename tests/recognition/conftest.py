"""Fixtures for the recognition tests: a folder of real photographs and copies of them."""
import io

import pytest
from django.core.management import call_command
from PIL import Image, ImageEnhance

from tests.processing.features.conftest import PHOTOS
from tests.search.conftest import fresh_caches  # noqa: F401 - autouse: per-process search caches per test


def jpeg(im, quality=90):
    out = io.BytesIO()
    im.save(out, "JPEG", quality=quality)
    return out.getvalue()


@pytest.fixture(scope="session")
def pictures():
    """{name: JPEG bytes}: two photographs and altered copies of them."""
    cat = Image.open(PHOTOS / "chelsea.jpg").convert("RGB")
    cup = Image.open(PHOTOS / "coffee.jpg").convert("RGB")
    return {
        "cat.jpg": jpeg(cat),
        "cat-small.jpg": jpeg(cat.resize((cat.width // 2, cat.height // 2)), quality=30),
        "cat-mirror.jpg": jpeg(cat.transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
        "cup.jpg": jpeg(cup),
        "cup-bright.jpg": jpeg(ImageEnhance.Brightness(cup).enhance(1.2)),
    }


@pytest.fixture
def album(api, pictures):
    """/album/ holding the pictures (uploads), their features computed."""
    for name, data in pictures.items():
        assert api.upload(f"/album/{name}", data, content_type="image/jpeg").status_code == 201
    call_command("compute_features", "/album/", "--no-progress")
    return "/album/"
