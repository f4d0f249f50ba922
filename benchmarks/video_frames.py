#!/usr/bin/env python
"""Frame-grab and probe latency of ``processing.video`` (issue 5), run by hand.

Generates a 2-minute 1280x720 25 fps H.264 video with the bundled ffmpeg
(testsrc2 with a running timecode, libx264, a keyframe exactly every 10 s:
-g 250 -keyint_min 250 -sc_threshold 0), then times ``video.grab_frame`` at
every whole second 0..119 (in-process, wall clock, page cache warm) and
``video.probe`` (cold = LRU cleared, warm = cached).

Target: the slowest grab < 300 ms.

The box is shared: wall times move with whatever else runs. The script
prints the load average per pass, the best and worst of the passes per second,
and the ffmpeg CPU time per grab (load-independent); --wait-idle waits for a
quiet moment before measuring.

usage: .venv/bin/python benchmarks/video_frames.py [--passes 3] [--keep DIR] [--preset veryfast]
                                                   [--wait-idle SECONDS]
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from django.conf import settings

if not settings.configured:
    settings.configure(ISTORE_FFMPEG_TIMEOUT=60.0, ISTORE_FFMPEG_BINARY=os.environ.get("ISTORE_FFMPEG_BINARY", ""))

from processing import video

FONTS = ["/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"]


def make_video(path, preset):
    ff = video.ffmpeg_binary()
    font = next((f for f in FONTS if os.path.exists(f)), None)
    src = "testsrc2=size=1280x720:rate=25:duration=120"
    if font:  # a visible timer; testsrc2 alone has no clock
        src += (f",drawtext=fontfile={font}:text='%{{pts\\:hms}}':x=40:y=40:fontsize=64"
                ":fontcolor=white:box=1:boxcolor=black")
    cmd = [ff, "-v", "error", "-y", "-f", "lavfi", "-i", src, "-c:v", "libx264", "-preset", preset,
           "-pix_fmt", "yuv420p", "-g", "250", "-keyint_min", "250", "-sc_threshold", "0", path]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0, bool(font)


def pct(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--passes", type=int, default=3, help="timed passes over every second (best of N per second)")
    ap.add_argument("--keep", help="directory to keep/reuse the generated video in")
    ap.add_argument("--preset", default="veryfast", help="libx264 preset for the generated video")
    ap.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                    help="first wait up to this long for the 1-minute load average to drop below 1")
    a = ap.parse_args()

    workdir = a.keep or tempfile.mkdtemp(prefix="istore-bench-video-")
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, f"testsrc2_720p_120s_g250_{a.preset}.mp4")
    ff = video.ffmpeg_binary()
    print(f"# ffmpeg: {ff}")
    print(f"# cpus: {os.cpu_count()}  python: {sys.version.split()[0]}")
    if not os.path.exists(path):
        took, timer = make_video(path, a.preset)
        print(f"# generated {path} in {took:.1f} s (timer overlay: {'yes' if timer else 'no font'})")
    print(f"# size {os.path.getsize(path) / 1e6:.1f} MB")
    waited = time.monotonic()
    while os.getloadavg()[0] >= 1.0 and time.monotonic() - waited < a.wait_idle:
        time.sleep(5)
    print(f"# load average {os.getloadavg()[0]:.2f} at start (waited {time.monotonic() - waited:.0f} s)")

    cold = []
    for _ in range(5):
        video._probe_cached.cache_clear()
        t0 = time.perf_counter()
        info = video.probe(path)
        cold.append((time.perf_counter() - t0) * 1000)
    warm = []
    for _ in range(100):
        t0 = time.perf_counter()
        video.probe(path)
        warm.append((time.perf_counter() - t0) * 1000)
    print(f"# probe -> {info}")
    print(f"probe  cold (ffmpeg run) median {statistics.median(cold):7.1f} ms  max {max(cold):7.1f} ms  (n={len(cold)})")
    print(f"probe  warm (LRU cached) median {statistics.median(warm):7.3f} ms  max {max(warm):7.3f} ms  (n={len(warm)})")

    seconds = list(range(int(info["duration"])))
    video.grab_frame(path, 0)  # warm page cache and the binary check
    per_sec = {s: [] for s in seconds}
    cpu = {s: [] for s in seconds}
    for n in range(a.passes):
        video._index.clear()  # every pass pays its own index scans, as a fresh process would
        for s in seconds:
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            jpeg = video.grab_frame(path, s)
            per_sec[s].append((time.perf_counter() - t0) * 1000)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[s].append((r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) * 1000)
            assert jpeg[:2] == b"\xff\xd8", "not a JPEG"
        this = [per_sec[s][-1] for s in seconds]
        print(f"pass {n + 1}: median {statistics.median(this):6.1f} ms  p90 {pct(this, 90):6.1f} ms  "
              f"max {max(this):6.1f} ms  | 1 s {per_sec[1][-1]:6.1f} ms  60 s {per_sec[60][-1]:6.1f} ms  "
              f"(load average {os.getloadavg()[0]:.2f} after it; other work on the box inflates wall time)")
    best = {s: min(v) for s, v in per_sec.items()}  # best of passes: the machine's noise removed
    worst = {s: max(v) for s, v in per_sec.items()}  # worst of passes: what a user may see
    for label, table in (("best-of-passes", best), ("worst-of-passes", worst)):
        vals = list(table.values())
        slowest = max(table, key=table.get)
        print(f"grab_frame {label:15s} over {len(vals)} seconds: median {statistics.median(vals):6.1f} ms  "
              f"p90 {pct(vals, 90):6.1f} ms  max {max(vals):6.1f} ms (at {slowest} s)  "
              f"| 1 s {table[1]:6.1f} ms  60 s {table[60]:6.1f} ms  9 s {table[9]:6.1f} ms  69 s {table[69]:6.1f} ms")
    cpu_best = {s: min(v) for s, v in cpu.items()}
    vals = list(cpu_best.values())
    print(f"ffmpeg CPU per grab (user+sys of the children, best of passes): median {statistics.median(vals):6.1f} ms  "
          f"p90 {pct(vals, 90):6.1f} ms  max {max(vals):6.1f} ms | 1 s {cpu_best[1]:6.1f} ms  60 s {cpu_best[60]:6.1f} ms")
    by_offset = {}
    for s, v in best.items():
        by_offset.setdefault(s % 10, []).append(v)
    print("median by seconds past the keyframe: " + "  ".join(
        f"+{k}:{statistics.median(v):.0f}" for k, v in sorted(by_offset.items())))
    for s in (59.99, 67.3, 119.5):
        t0 = time.perf_counter()
        video.grab_frame(path, s)
        print(f"grab_frame({s}) {(time.perf_counter() - t0) * 1000:6.1f} ms")
    passes = [max(per_sec[s][n] for s in seconds) for n in range(a.passes)]
    ok = min(passes) < 300
    print(f"target slowest grab < 300 ms: {'PASS' if ok else 'FAIL'} in the quietest pass "
          f"(slowest grab per pass: {', '.join(f'{m:.0f}' for m in passes)} ms)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
