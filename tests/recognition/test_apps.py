"""The recognition app's start-up: what every istore process needs from it."""
import os

from tests.servers import manage

from tests.processing.features.conftest import PHOTOS

SCRIPT = (
    "import usearch.index\n"  # what the first _search with an index loads
    "from processing.features import extract\n"
    f"print(extract.of_file({str(PHOTOS / 'chelsea.jpg')!r}).labels[0]['label'])\n"
)


def test_features_work_in_a_process_that_loaded_the_index_library_first(tmp_path):
    env = {**os.environ, "DJANGO_DEBUG": "true", "ISTORE_DATA_DIR": str(tmp_path)}
    done = manage("shell", "-c", SCRIPT, env=env)
    assert done.stdout.strip().endswith("cat"), "onnxruntime loaded after usearch crashes its process"
