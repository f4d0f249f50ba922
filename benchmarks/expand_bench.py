"""
_expand of a 1-hour video (issue 5 target: under 5 s on SQLite).

    .venv/bin/python benchmarks/expand_bench.py [--minutes 60] [--database URL]

Generates a low-resolution video of the given length with the bundled ffmpeg,
starts istore under gunicorn (2 workers), uploads the video, and times
``POST /bench/slice/_expand`` twice (first call creates, second updates).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import imageio_ffmpeg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_bench import environment, free_port, start_gunicorn, stop  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def request(method, url, data=None, content_type=None):
    req = urllib.request.Request(url, data=data, method=method)
    if content_type:
        req.add_header("Content-Type", content_type)
    with urllib.request.urlopen(req, timeout=600) as response:
        return response.status, response.read()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--database")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="istore-expand-"))
    video = work / "long.mp4"
    started = time.perf_counter()
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i",
                    f"testsrc=size=64x48:rate=1:duration={args.minutes * 60}", "-c:v", "libx264",
                    "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(video)], check=True)
    print(f"made a {args.minutes}-minute video ({video.stat().st_size} bytes) in "
          f"{time.perf_counter() - started:.1f}s")
    env = environment(work / "data", args.database)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    port = free_port()
    server = start_gunicorn(env, port)
    base = f"http://127.0.0.1:{port}"
    try:
        request("PUT", f"{base}/bench/long.mp4", video.read_bytes(), "video/mp4")
        for attempt in ("first (creates)", "second (updates)"):
            started = time.perf_counter()
            status, body = request("POST", f"{base}/bench/slice/_expand",
                                   json.dumps({"video": "/bench/long.mp4"}).encode())
            print(f"_expand {attempt}: {status} {body.decode()} in {time.perf_counter() - started:.2f}s")
    finally:
        stop(server)


if __name__ == "__main__":
    main()
