#!/usr/bin/env python3
"""In-process speed of istore's processing layer against the raw Pillow limit (run by hand).

    cd /work/main && .venv/bin/python benchmarks/processing_inproc.py [--rounds 5] [--secs 2]
        [--sizes 1920x1080,4000x3000] [--par 1,2] [--only raw,istore]

Workload (issue 4 §5): a JPEG file -> width 320, aspect kept, Lanczos -> JPEG q85 bytes.

  raw     the limit: Image.open(path) -> draft('RGB', >= 1x target) -> resize(LANCZOS, box) -> save q85
  istore  parse_operation({"apply": "resize", "w": "320"}).run(path, "image/jpeg")  (default quality 85)

Both read the source from the same file each time.  The source image is made
like ../shared/bench/make_images.py does: sample.jpg centre-cropped to the aspect,
LANCZOS-upscaled, gaussian noise sigma 4 (seed 1234), JPEG q90.  A fresh process
runs the variants' rounds interleaved (raw, istore, raw, ...); with --par N, N such
processes run at once and their ops/s are summed.  Prints the median ops/s over the
rounds, by wall clock and by process CPU time (the steadier figure on a shared box).
"""
import argparse
import io
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SAMPLE = "/work/shared/bench/sample.jpg"
W, Q = 320, 85


def make_image(path, size):
    """Build the test JPEG deterministically (skipped when it already exists)."""
    if os.path.exists(path):
        return
    import numpy as np
    from PIL import Image, ImageOps
    src = Image.open(SAMPLE).convert("RGB")
    big = ImageOps.fit(src, size, Image.Resampling.LANCZOS)
    noise = np.random.default_rng(1234).normal(0.0, 4.0, (size[1], size[0], 3))
    a = np.asarray(big, dtype=np.float32) + noise
    Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8), "RGB").save(path, "JPEG", quality=90)


def raw_variant():
    from PIL import Image

    def run(path):
        im = Image.open(path)
        h = max(1, round(im.height * W / im.width))
        box = im.draft("RGB", (W, h))
        if im.mode not in ("RGB", "L"):
            im = im.convert("RGB")
        out = io.BytesIO()
        im.resize((W, h), Image.Resampling.LANCZOS, box=box[1] if box else None).save(out, "JPEG", quality=Q)
        return out.getvalue()
    return run


def istore_variant():
    sys.path.insert(0, ROOT)
    from django.conf import settings
    # processing only reads these two settings; configure() avoids needing SECRET_KEY etc.
    settings.configure(ISTORE_MAX_SOURCE_PIXELS=50_000_000, ISTORE_MAX_OUTPUT_PIXELS=50_000_000)
    from processing.operations import parse_operation
    op = parse_operation({"apply": "resize", "w": str(W)})

    def run(path):
        return op.run(path, "image/jpeg").data
    return run


VARIANTS = {"raw": raw_variant, "istore": istore_variant}


def child(variants, path, rounds, secs):
    """Run the variants interleaved (A B A B ...) in this process: the box is shared and noisy, and
    alternating rounds exposes both variants to the same background load."""
    fns = {v: VARIANTS[v]() for v in variants}
    counts, outs = {}, {}
    for v, fn in fns.items():
        outs[v] = fn(path)
        for _ in range(3):
            fn(path)
        t0 = time.perf_counter()
        fn(path)
        counts[v] = max(3, int(secs / (time.perf_counter() - t0)))
    wall = {v: [] for v in fns}
    cpu = {v: [] for v in fns}
    for _ in range(rounds):
        for v, fn in fns.items():
            n = counts[v]
            w0, c0 = time.perf_counter(), time.process_time()
            for _ in range(n):
                fn(path)
            wall[v].append(n / (time.perf_counter() - w0))
            cpu[v].append(n / (time.process_time() - c0))
    from PIL import Image
    for v in fns:
        size = Image.open(io.BytesIO(outs[v])).size
        print(f"{v} {statistics.median(wall[v]):.1f} {statistics.median(cpu[v]):.1f} {size[0]}x{size[1]} "
              f"{len(outs[v])}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--secs", type=float, default=2.0)
    ap.add_argument("--sizes", default="1920x1080")
    ap.add_argument("--par", default="1,2")
    ap.add_argument("--only", default="raw,istore")
    ap.add_argument("--dir", default="/tmp/istore-bench")
    ap.add_argument("--child", nargs=2, metavar=("VARIANTS", "PATH"))
    a = ap.parse_args()
    if a.child:
        return child(a.child[0].split(","), a.child[1], a.rounds, a.secs)
    import PIL
    print(f"# python {sys.version.split()[0]}  Pillow {PIL.__version__}  cpus {os.cpu_count()}  "
          f"rounds {a.rounds} x ~{a.secs}s per variant, interleaved, median")
    os.makedirs(a.dir, exist_ok=True)
    print(f"{'image':14s} {'variant':8s} {'procs':>5s} {'ops/s (wall)':>13s} {'ops/s/core (cpu)':>17s}"
          "  output")
    for spec in a.sizes.split(","):
        size = tuple(int(v) for v in spec.split("x"))
        path = os.path.join(a.dir, f"photo_{spec}.jpg")
        make_image(path, size)
        for par in (int(p) for p in a.par.split(",")):
            cmd = [sys.executable, __file__, "--rounds", str(a.rounds), "--secs", str(a.secs),
                   "--child", a.only, path]
            procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(par)]
            rows = [line.split() for p in procs for line in p.communicate()[0].splitlines()]
            wall, cpu = {}, {}
            for variant in a.only.split(","):
                mine = [r for r in rows if r[0] == variant]
                wall[variant] = sum(float(r[1]) for r in mine)
                cpu[variant] = sum(float(r[2]) for r in mine) / len(mine)
                print(f"{spec:14s} {variant:8s} {par:5d} {wall[variant]:13.1f} {cpu[variant]:17.1f}  "
                      f"{mine[0][3]} {mine[0][4]}B", flush=True)
            if "raw" in wall and "istore" in wall:
                print(f"{spec:14s} istore/raw on {par} process(es): wall {wall['istore'] / wall['raw']:.1%}, "
                      f"cpu {cpu['istore'] / cpu['raw']:.1%}", flush=True)


if __name__ == "__main__":
    main()
