"""The README's commands, run as written on a fresh copy of the repository.

A newcomer's first hour is the README: ``make run``, the curl walk-through,
``make superuser`` and ``make token``. This runs them on a copy of the
repository's files (what a clone holds) with an environment that has none of
istore's settings, so a command that only works with something set by hand
fails here. Two things are given, as a reader would have them: ``cat.jpg``
and ``clip.mp4`` in the working directory, and ``make run`` on a free port
(``8592`` in the commands becomes that port). The copy shares this run's
``.venv`` (its ``requirements.txt`` is the same file), so nothing is installed.
"""
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests.servers import ROOT, free_port

README = (ROOT / "README.md").read_text()
# The settings a developer's shell does not have; the tests' own environment sets some of them.
SETTINGS = re.compile(r"^(ISTORE_|DJANGO_|SECRET_KEY$|DATABASE_URL$|ALLOWED_HOSTS$|PROMETHEUS_)")


def shell_blocks():
    return re.findall(r"```sh\n(.*?)```", README, re.S)


def block_starting(text):
    found = [block for block in shell_blocks() if block.lstrip().startswith(text)]
    assert len(found) == 1, f"the README should have one sh block starting with {text!r}"
    return found[0]


def clean_env():
    env = {name: value for name, value in os.environ.items() if not SETTINGS.match(name)}
    env.pop("MAKEFLAGS", None)
    return env


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """The repository's files (tracked and new, not ignored) copied as a clone would have them."""
    target = tmp_path_factory.mktemp("fresh") / "istore"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, listed):
        source = ROOT / os.fsdecode(name)
        if source.is_file():
            (target / os.fsdecode(name)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / os.fsdecode(name))
    (target / ".venv").symlink_to(ROOT / ".venv")
    return target


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Where the reader runs curl: a JPEG and a 12-second video of their own."""
    import imageio_ffmpeg

    directory = tmp_path_factory.mktemp("reader")
    Image.new("RGB", (640, 480), (200, 120, 40)).save(directory / "cat.jpg", "JPEG")
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=64x48:rate=5:duration=12", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    str(directory / "clip.mp4")], check=True, timeout=120)
    return directory


@pytest.fixture(scope="module")
def served(clone):
    """``make run``, as the README starts it, on a free port; its base URL."""
    assert "make run " in block_starting("make run"), "the README starts istore with make run"
    port = free_port()
    # make run's S3 listener (127.0.0.1:9000) moves to a free port too: another make run may hold 9000.
    env = {**clean_env(), "ISTORE_S3_BIND": f"127.0.0.1:{free_port()}"}
    process = subprocess.Popen(["make", "run", f"PORT={port}"], cwd=clone, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if requests.get(base + "/_health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:  # not up yet, or still booting
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode(errors="replace") if process.poll() is not None else ""
                pytest.fail(f"make run did not come up on {base}: {output[-3000:]}")
            time.sleep(0.3)
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def run_commands(script, cwd, port):
    """Run README commands in bash, stopping at the first that fails; curl fails on 4xx/5xx."""
    prelude = 'set -e\ncurl() { command curl --fail-with-body -sS "$@"; }\n'
    script = script.replace("127.0.0.1:8592", f"127.0.0.1:{port}")
    return subprocess.run(["bash", "-c", prelude + script], cwd=cwd, env=clean_env(), capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def walkthrough(served, workdir):
    return run_commands(block_starting("HOST="), workdir, served)


def test_walkthrough_commands_all_succeed(walkthrough):
    assert walkthrough.returncode == 0, (
        f"a README command failed:\n{walkthrough.stdout[-2000:]}\n{walkthrough.stderr[-2000:]}")


def test_walkthrough_frame_example_is_a_frame_of_the_clip(walkthrough, workdir):
    """``sec=03`` names a frame for the clip the README describes (over 10 s), so it is an image."""
    assert walkthrough.returncode == 0, walkthrough.stderr[-2000:]
    with Image.open(workdir / "sec3.jpg") as frame:
        assert frame.size == (64, 48), "sec3.jpg should be the clip's frame at 3 s"


def answer_prompts(argv, cwd, answers, timeout=120):
    """Run ``argv`` on a terminal of its own, typing each reply once its prompt appears; (status, output)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the command, with the pty as its controlling terminal
        os.chdir(cwd)
        os.execvpe(argv[0], argv, clean_env())
    output, pending = b"", list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # the command ended and closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            if pending and pending[0][0] in output.decode(errors="replace").rsplit("\n", 1)[-1]:
                os.write(fd, pending.pop(0)[1].encode() + b"\n")
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def test_token_commands_work_as_written(served, clone):
    block = block_starting("make superuser")
    first, rest = block.split("\n", 1)
    assert first.startswith("make superuser"), "the token block begins with make superuser"
    password = "readme-" + os.urandom(8).hex()
    status, output = answer_prompts(["make", "superuser"], clone, [
        ("Username", "alice"), ("Email", ""), ("Password:", password), ("Password (again)", password)])
    assert status == 0, f"make superuser failed: {output[-2000:]}"
    done = run_commands(f"HOST=http://127.0.0.1:8592\n{rest}", clone, served)
    assert done.returncode == 0, f"a token command failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert '"_filepath":"/a/b"' in done.stdout, "the tokened POST should answer the item"
