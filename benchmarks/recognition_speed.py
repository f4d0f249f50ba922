"""
CPU time of the built-in features per 1920x1080 JPEG (run by hand; results in
benchmarks/README.md and docs/recognition.md).

    mkdir -p /tmp/photo-wheels && .venv/bin/pip download --no-deps -d /tmp/photo-wheels \\
        scikit-image==0.26.0 scikit-learn==1.9.1 matplotlib==3.11.2
    flock -x /tmp/istore-heavy.lock .venv/bin/python benchmarks/recognition_speed.py --wheels /tmp/photo-wheels

Each of the colour photographs in the wheels (see recognition_robustness.py)
is cut to 16:9 and scaled to 1920x1080, saved as JPEG quality 90. Then, in
this process, after one warm-up, ``processing.features.extract.of_file``
(what ``?apply=features``, the background computation and compute_features
run: decode, pHash and PDQ with their mirror hashes, the model, the labels)
is timed on each file ``--rounds`` times with ``time.process_time`` (CPU of
every thread of the process: onnxruntime runs on one). The stages are timed
the same way on their own. For comparison, "full decode" is the same
features from a full-size decode (no JPEG draft).
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from recognition_robustness import photographs  # noqa: E402

COLOUR = ("astronaut", "chelsea", "coffee", "hubble_deep_field", "ihc", "motorcycle_left", "retina", "rocket",
          "china", "flower", "grace_hopper", "grass", "gravel")


def frames(wheels, scratch):
    paths = []
    for name, im in photographs(wheels).items():
        stem = Path(name).stem
        if stem not in COLOUR:
            continue
        w, h = im.size
        if w / h > 16 / 9:
            cw, ch = round(h * 16 / 9), h
        else:
            cw, ch = w, round(w * 9 / 16)
        box = ((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch)
        path = scratch / f"{stem}-1920x1080.jpg"
        im.crop(box).resize((1920, 1080), Image.Resampling.LANCZOS).save(path, "JPEG", quality=90)
        paths.append(str(path))
    return paths


def cpu_ms(function, *args):
    start = time.process_time()
    function(*args)
    return (time.process_time() - start) * 1000


def summary(samples):
    samples = sorted(samples)
    return (f"median {statistics.median(samples):5.1f} ms, p90 {samples[int(0.9 * (len(samples) - 1))]:5.1f} ms, "
            f"mean {statistics.fmean(samples):5.1f} ms ({len(samples)} runs)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheels", required=True)
    parser.add_argument("--scratch", default="/tmp/istore-speed")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "istore_site.settings")
    os.environ.setdefault("DJANGO_DEBUG", "true")
    import django

    django.setup()
    import numpy as np

    from processing import imaging
    from processing.features import efficientnet, extract, hashes

    scratch = Path(args.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    paths = frames(args.wheels, scratch)
    extract.of_file(paths[0])  # loads the model

    def decode(path):
        with imaging.open_image(path) as im:
            return extract.working_image(im)

    def full_decode(path):
        with imaging.open_image(path) as im:
            im.load()
            rgb = extract._flattened(imaging.pixel_mode(im))
            return extract.of_image(Image.fromarray(np.asarray(rgb)))

    stages = {"whole (of_file)": [], "decode + resize to 455x256": [], "PDQ + mirror": [], "pHash + mirror": [],
              "model (onnxruntime)": [], "whole, full decode": []}
    for _ in range(args.rounds):
        for path in paths:
            stages["whole (of_file)"].append(cpu_ms(extract.of_file, path))
            rgb = decode(path)
            stages["decode + resize to 455x256"].append(cpu_ms(decode, path))
            stages["PDQ + mirror"].append(cpu_ms(hashes.pdq_with_mirror, rgb))
            stages["pHash + mirror"].append(cpu_ms(
                lambda: (hashes.phash(rgb), hashes.phash(rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))))
            batch = extract.model_input(rgb)
            stages["model (onnxruntime)"].append(cpu_ms(efficientnet.model().run, batch))
            stages["whole, full decode"].append(cpu_ms(full_decode, path))
    print(f"{len(paths)} photographs at 1920x1080, JPEG q90; {args.rounds} rounds")
    for name, samples in stages.items():
        print(f"{name:28s} {summary(samples)}")


if __name__ == "__main__":
    main()
