"""
Cached derivatives through nginx against thumbor's result storage (issue 8 §5).

    .venv/bin/python benchmarks/nginx_front.py --mode plain   # nginx proxies every request to istore
    .venv/bin/python benchmarks/nginx_front.py --mode accel   # + ISTORE_ACCEL_REDIRECT: nginx sends the cached file
    .venv/bin/python benchmarks/nginx_front.py --mode cache   # + ISTORE_ACCEL_EXPIRES=1 and nginx's proxy_cache

Starts istore (gunicorn, 2 workers, SQLite) behind nginx configured as
docs/deploy.md says (tests/nginx.py, the configuration the tests run),
registers /bench/file:///tmp/anchors/img/<image> (../shared/bench/setup.sh
makes the images), and runs ../shared/bench/compare_resize.sh with thumbor's
result storage on against the nginx URL: thumbor and the candidate in turn,
in one run, same wrk.
"""
import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.nginx import istore_behind_nginx  # noqa: E402

BENCH = ROOT.parent / "shared" / "bench"
IMAGES = Path("/tmp/anchors/img")
MODES = {
    "plain": ({}, False),
    "accel": ({"ISTORE_ACCEL_REDIRECT": "/_accel/"}, False),
    "cache": ({"ISTORE_ACCEL_EXPIRES": "1"}, True),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--nginx-workers", type=int, default=2)
    args = parser.parse_args()
    settings, cache = MODES[args.mode]
    settings = {**settings, "ISTORE_FILE_ROOTS": str(IMAGES), "ISTORE_ACCESS_LOG": ""}
    with tempfile.TemporaryDirectory(prefix="istore-nginx-") as work, \
            istore_behind_nginx(Path(work), settings, cache=cache, nginx_workers=args.nginx_workers) as servers:
        for image in IMAGES.glob("*.jpg"):
            requests.post(f"{servers['app']}/bench/file://{image}", data={"metadata": "{}"}, timeout=30)
        template = servers["nginx"] + "/bench/file://" + str(IMAGES) + "/{img}?apply=resize&w={w}"
        print(f"mode {args.mode}: {template}", flush=True)
        subprocess.run(["bash", str(BENCH / "compare_resize.sh"), template], env={**os.environ, "THUMBOR_RS": "on"},
                       check=True)


if __name__ == "__main__":
    main()
