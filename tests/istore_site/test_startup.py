"""A wrong setting stops manage.py and gunicorn with one line that names it, not a traceback."""
import os
import subprocess
import sys

import pytest

from tests.servers import ROOT, free_port, manage

WRONG = {"ISTORE_STORAGE": "floppy"}
MESSAGE = "istore: ISTORE_STORAGE must be local or s3, not 'floppy'"


@pytest.fixture
def wrong_environment(tmp_path):
    return {**os.environ, "ISTORE_DATA_DIR": str(tmp_path), **WRONG}


def test_manage_py_names_the_wrong_setting_in_one_line(wrong_environment):
    done = manage("check", env=wrong_environment, check=False)
    assert done.returncode != 0, "manage.py check must fail on a wrong setting"
    assert done.stderr.strip() == MESSAGE, f"manage.py should print one line, printed: {done.stderr[-1000:]}"


def test_gunicorn_names_the_wrong_setting_in_one_line_before_any_worker(wrong_environment):
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    done = subprocess.run([gunicorn, "istore_site.wsgi", "--config", "gunicorn.conf.py",
                           "--bind", f"127.0.0.1:{free_port()}"],
                          cwd=ROOT, env=wrong_environment, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0, "gunicorn must not start with a wrong setting"
    assert MESSAGE in done.stderr, f"gunicorn should name the setting: {done.stderr[-1000:]}"
    assert "Traceback" not in done.stderr, f"gunicorn printed a traceback: {done.stderr[-2000:]}"
    assert "Booting worker" not in done.stderr, "the settings are checked before any worker starts"
