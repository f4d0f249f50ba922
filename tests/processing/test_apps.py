"""Pillow's block allocator is set up from the settings when istore starts (processing/apps.py)."""
import os

import pytest

from tests.servers import manage

SHOW = "from PIL import Image; print(Image.core.get_blocks_max(), Image.core.get_block_size())"


def run(*args, **env):
    return manage(*args, env={**os.environ, "DATABASE_URL": "", **env}, check=False)


def test_pillow_keeps_freed_blocks_by_default():
    done = run("shell", "-c", SHOW)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["16", str(1 << 20)], f"Pillow's allocator was not set up: {done.stdout!r}"


def test_pillow_block_settings_come_from_the_environment():
    done = run("shell", "-c", SHOW, ISTORE_PILLOW_BLOCKS_MAX="0", ISTORE_PILLOW_BLOCK_SIZE="65536")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["0", "65536"], f"the settings were not applied: {done.stdout!r}"


@pytest.mark.parametrize("name, value", [
    ("ISTORE_PILLOW_BLOCK_SIZE", "1000"),
    ("ISTORE_PILLOW_BLOCK_SIZE", "0"),
    ("ISTORE_PILLOW_BLOCKS_MAX", "-1"),
])
def test_bad_pillow_block_settings_stop_startup(name, value):
    done = run("check", **{name: value})
    assert done.returncode != 0 and name in done.stderr, f"{name}={value} was accepted: {done.stderr[-300:]!r}"
