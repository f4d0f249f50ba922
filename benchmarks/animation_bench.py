"""
Peak memory and time of an animated GIF through istore: a 500-frame 640x480 GIF
(ffmpeg's testsrc, 20 s at 25 fps) resized to 320 wide, as GIF and as WebP, by
one gunicorn worker (benchmarks/start_istore.sh with WORKERS=1), with the
worker's peak RSS (VmHWM) read from /proc before and after; then, for
comparison, the same resize written by Pillow's own multi-frame saver
(``save_all`` with every frame in a list) in a fresh process.

    .venv/bin/python benchmarks/animation_bench.py [--frames 500] [--size 640x480]
"""
import argparse
import io
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]


def make_gif(path, frames, size):
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc=size={size}:rate=25:duration={frames / 25}", "-loop", "0", str(path)], check=True)


def peak_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1])
    return 0


def worker_pid(master):
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(children[0])


def naive(path, width):
    """Pillow's own saver: every resized frame in a list, then save_all (in this process)."""
    from PIL import Image, ImageSequence

    started = time.perf_counter()
    with Image.open(path) as im:
        height = round(im.height * width / im.width)
        frames = [frame.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
                  for frame in ImageSequence.Iterator(im)]
        out = io.BytesIO()
        frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], loop=0, duration=40)
    print(f"pillow save_all: {time.perf_counter() - started:.1f} s, {len(out.getvalue())} bytes, "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB (whole process)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--naive", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive:
        return naive(args.naive, 320)
    work = Path(tempfile.mkdtemp(prefix="istore-anim-"))
    gif = work / "anim.gif"
    make_gif(gif, args.frames, args.size)
    print(f"source: {gif.stat().st_size} bytes, {args.frames} frames of {args.size}")
    port = 8000 + os.getpid() % 1000
    env = {**os.environ, "WORKERS": "1", "ISTORE_ACCESS_LOG": ""}
    subprocess.run(["bash", str(ROOT / "benchmarks/start_istore.sh"), str(port), str(work / "data")], env=env,
                   check=True, stdout=subprocess.DEVNULL)
    master = int((work / "data/gunicorn.pid").read_text())
    base = f"http://127.0.0.1:{port}"
    try:
        assert requests.put(f"{base}/anim/testsrc.gif", data=gif.read_bytes(), timeout=60).status_code == 201
        worker = worker_pid(master)
        print(f"worker peak RSS before: {peak_kib(worker) / 1024:.0f} MiB")
        for query in ("apply=resize&w=320", "apply=resize&w=320&format=webp"):
            started = time.perf_counter()
            response = requests.get(f"{base}/anim/testsrc.gif?{query}", timeout=600)
            elapsed = time.perf_counter() - started
            from PIL import Image

            out = Image.open(io.BytesIO(response.content))
            print(f"{query}: {response.status_code} {response.headers['Content-Type']} {len(response.content)} "
                  f"bytes, {out.n_frames} frames of {out.size[0]}x{out.size[1]}, {elapsed:.1f} s; "
                  f"worker peak RSS now {peak_kib(worker) / 1024:.0f} MiB")
    finally:
        subprocess.run(["kill", str(master)], check=False)
    subprocess.run([sys.executable, __file__, "--naive", str(gif)], check=True)


if __name__ == "__main__":
    main()
