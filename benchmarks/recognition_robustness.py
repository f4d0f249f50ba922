"""
Near-duplicate robustness of the built-in features (run by hand; results in
benchmarks/README.md and docs/recognition.md).

    mkdir -p /tmp/photo-wheels && .venv/bin/pip download --no-deps -d /tmp/photo-wheels \\
        scikit-image==0.26.0 scikit-learn==1.9.1 matplotlib==3.11.2
    .venv/bin/python benchmarks/recognition_robustness.py --wheels /tmp/photo-wheels

The photographs are the real ones these three packages ship (scikit-image's
sample data, scikit-learn's two sample images, matplotlib's Grace Hopper),
read straight out of the wheels (nothing is installed). Each photograph and
its left and right halves are "originals" (a half is another picture: it
shares no pixels with the other half); each original gets eight copies:

    q30        JPEG quality 30
    resize50   half the width and height (Lanczos), JPEG quality 90
    bright+20  brightness x 1.2 (PIL ImageEnhance), bright-20: x 0.8
    crop5      5 % of the width cut off the left and 5 % of the height off the top
    rotate4    4 degrees counter-clockwise, same size, black corners
    flip       mirrored left-right
    text       a line of white text with a black outline across the lower part

Every item is uploaded to a scratch istore (SQLite under --scratch, in this
process, through Django's test client) and ``manage.py compute_features``
computes its features, as the ingest path does. Then, for each feature, from
the stored hashes and embeddings:

- recall: the share of (original, copy) pairs within the threshold, per change;
- precision: among all pairs within the threshold, the share that are
  duplicates (an original and its copies, or two copies of one original);
  pairs of items from different photographs are the negatives (an original
  and its own halves are neither: a half is a 50 % crop);
- "best at 99 %": the largest threshold whose precision is >= 0.99, and
  recall there; "default": at the threshold ``_duplicates`` uses by default.

``_phash`` and ``_pdq`` are as search uses them: the nearer of the hash and
its mirror image's hash ("hash alone" leaves the mirror out); ``_embedding``
is the angular distance 0.5 - 0.5 cos. Last, ``POST {dir}/_duplicates`` runs
with each ``by`` and its default threshold, and its groups are scored the same
way (two items in one group count as a pair found).
"""
import argparse
import io
import os
import shutil
import sys
import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Real photographs in the wheels (greyscale ones included); synthetic pictures
# (logos, charts, a phantom, a silhouette, text pages) and the right view of
# the motorcycle stereo pair (a near-duplicate of the left) are left out.
PHOTOS = (
    "skimage/data/astronaut.png", "skimage/data/brick.png", "skimage/data/camera.png",
    "skimage/data/chelsea.png", "skimage/data/coffee.png", "skimage/data/coins.png",
    "skimage/data/grass.png", "skimage/data/gravel.png", "skimage/data/hubble_deep_field.jpg",
    "skimage/data/ihc.png", "skimage/data/moon.png", "skimage/data/motorcycle_left.png",
    "skimage/data/retina.jpg", "skimage/data/rocket.jpg", "skimage/data/cell.png",
    "skimage/data/clock_motion.png",
    "sklearn/datasets/images/china.jpg", "sklearn/datasets/images/flower.jpg",
    "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
)
DIRECTORY = "/robustness/"
CHANGES = ("q30", "resize50", "bright+20", "bright-20", "crop5", "rotate4", "flip", "text")
EASY = ("q30", "resize50", "bright+20", "bright-20")


def photographs(wheels):
    found = {}
    for wheel in sorted(Path(wheels).glob("*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            for name in PHOTOS:
                if name in archive.namelist():
                    found[name] = Image.open(io.BytesIO(archive.read(name))).convert("RGB")
    missing = sorted(set(PHOTOS) - set(found))
    if missing:
        sys.exit(f"missing from the wheels in {wheels}: {missing}")
    return found


def originals(photos):
    """{name: (family, image)}: each photograph and its two halves."""
    out = {}
    for name, im in photos.items():
        stem = Path(name).stem
        w, h = im.size
        out[stem] = (stem, im)
        out[stem + "/left"] = (stem, im.crop((0, 0, w // 2, h)))
        out[stem + "/right"] = (stem, im.crop((w - w // 2, 0, w, h)))
    return out


def change(im, what):
    """(image, JPEG quality) of the copy ``what`` of ``im``."""
    w, h = im.size
    if what == "q30":
        return im, 30
    if what == "resize50":
        return im.resize((max(1, w // 2), max(1, h // 2)), Image.Resampling.LANCZOS), 90
    if what == "bright+20":
        return ImageEnhance.Brightness(im).enhance(1.2), 90
    if what == "bright-20":
        return ImageEnhance.Brightness(im).enhance(0.8), 90
    if what == "crop5":
        return im.crop((round(w * 0.05), round(h * 0.05), w, h)), 90
    if what == "rotate4":
        return im.rotate(4, resample=Image.Resampling.BICUBIC), 90
    if what == "flip":
        return im.transpose(Image.Transpose.FLIP_LEFT_RIGHT), 90
    if what == "text":
        out = im.copy()
        size = max(10, h // 12)
        font = ImageFont.load_default(size=size)
        ImageDraw.Draw(out).text((w // 20, h - 2 * size), "istore near-duplicate test", font=font,
                                 fill="white", stroke_width=max(1, size // 12), stroke_fill="black")
        return out, 90
    raise ValueError(what)


def build_set(wheels, scratch):
    """[(item name, family, original name, change or None, path)]."""
    items = []
    for name, (family, im) in originals(photographs(wheels)).items():
        base = scratch / name.replace("/", "_")
        path = f"{base}.jpg"
        im.save(path, "JPEG", quality=90)
        items.append((name, family, name, None, path))
        for what in CHANGES:
            copy, quality = change(im, what)
            path = f"{base}.{what}.jpg"
            copy.save(path, "JPEG", quality=quality)
            items.append((f"{name}:{what}", family, name, what, path))
    return items


def setup(data_dir):
    os.environ.setdefault("SECRET_KEY", "istore-benchmark-secret-key-0123456789-abcdefghijklmnop")
    os.environ["ISTORE_DATA_DIR"] = str(data_dir)
    os.environ["ISTORE_ALLOW_ANONYMOUS_WRITES"] = "true"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "istore_site.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def key_of(name):
    return f"{DIRECTORY}{name.replace('/', '_').replace(':', '.')}.jpg"


def store(items):
    """Upload every item (raw PUT, as curl -T), then compute_features: the ingest path."""
    from django.core.management import call_command
    from django.test import Client

    client = Client(HTTP_HOST="localhost")
    for name, _, _, _, path in items:
        with open(path, "rb") as handle:
            response = client.put(key_of(name), handle.read(), content_type="image/jpeg")
        assert response.status_code in (200, 201), response.content
    call_command("compute_features", DIRECTORY, "--no-progress")


def stored_rows(items):
    """Per item: the stored hashes, their mirrors and the unit embedding."""
    from objects.models import Item, hash_key
    from recognition import store as features_store
    from search.models import Vector

    rows = []
    for name, *_ in items:
        item = Item.objects.get(key_hash=hash_key(key_of(name)))
        stored = features_store.current(item.id)
        blob = Vector.objects.get(item_id=item.id, field="_embedding").vector
        rows.append({
            "phash": np.frombuffer(bytes(stored.phash), np.uint8),
            "phash_mirror": np.frombuffer(bytes(stored.phash_mirror), np.uint8),
            "pdq": np.frombuffer(bytes(stored.pdq), np.uint8),
            "pdq_mirror": np.frombuffer(bytes(stored.pdq_mirror), np.uint8),
            "embedding": np.frombuffer(bytes(blob), "<f4").astype(np.float64),
        })
    return rows


def distance_matrices(rows):
    def hamming(name, bits, mirror):
        codes = np.stack([r[name] for r in rows])
        plain = np.bitwise_count(codes[:, None, :] ^ codes[None, :, :]).sum(-1)
        if not mirror:
            return plain / bits
        mirrors = np.stack([r[name + "_mirror"] for r in rows])
        flipped = np.bitwise_count(mirrors[:, None, :] ^ codes[None, :, :]).sum(-1)
        both = np.minimum(plain, flipped)
        return np.minimum(both, both.T) / bits

    vectors = np.stack([r["embedding"] for r in rows])
    return {
        "_phash (hash alone)": hamming("phash", 64, False),
        "_phash": hamming("phash", 64, True),
        "_pdq (hash alone)": hamming("pdq", 256, False),
        "_pdq": hamming("pdq", 256, True),
        "_embedding": np.clip(0.5 - 0.5 * (vectors @ vectors.T), 0, 1),
    }


def duplicates_verb(items, by):
    """Pairs (i, j), i < j, that POST {dir}/_duplicates puts in one group (default threshold)."""
    import json

    from django.test import Client

    response = Client(HTTP_HOST="localhost").post(DIRECTORY + "_duplicates", json.dumps({"by": by}), content_type="application/json")
    assert response.status_code == 200, response.content
    index = {key_of(name): i for i, (name, *_) in enumerate(items)}
    together = set()
    for group in response.json()["groups"]:
        members = sorted(index[key] for key in group)
        together.update((a, b) for n, a in enumerate(members) for b in members[n + 1 :])
    return together


def relations(items):
    """(positive mask, negative mask, {change: [(i, j)]} original-copy pairs)."""
    n = len(items)
    positive = np.zeros((n, n), bool)
    negative = np.zeros((n, n), bool)
    pairs = defaultdict(list)
    index_of = {item[0]: i for i, item in enumerate(items)}
    for i, (name_i, family_i, original_i, what_i, _) in enumerate(items):
        for j in range(i + 1, n):
            _, family_j, original_j, what_j, _ = items[j]
            if original_i == original_j:
                positive[i, j] = True
            elif family_i != family_j:
                negative[i, j] = True
        if what_i is not None:
            pairs[what_i].append((index_of[original_i], i))
    return positive, negative, pairs


def evaluate(matrix, positive, negative, pairs, threshold):
    within = matrix <= threshold
    tp, fp = int((within & positive).sum()), int((within & negative).sum())
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = {what: float(np.mean([matrix[i, j] <= threshold for i, j in pairs[what]])) for what in CHANGES}
    return precision, fp, recall


def best_threshold(matrix, positive, negative, pairs, target=0.99):
    """The largest threshold whose pairwise precision is >= target."""
    candidates = np.unique(np.round(matrix[positive | negative], 6))
    best = 0.0
    for threshold in candidates:
        precision, _, _ = evaluate(matrix, positive, negative, pairs, threshold)
        if precision >= target:
            best = float(threshold)
        else:
            break
    return best


def report(name, matrix, positive, negative, pairs, threshold):
    precision, fp, recall = evaluate(matrix, positive, negative, pairs, threshold)
    easy = np.mean([recall[w] for w in EASY])
    every = np.mean([recall[w] for w in CHANGES])
    cells = " | ".join(f"{recall[w]:.0%}" for w in CHANGES)
    print(f"| {name} | {threshold:.3f} | {cells} | {easy:.0%} | {every:.0%} | {precision:.2%} ({fp} FP) |")


def report_groups(by, together, positive, negative, pairs):
    n = positive.shape[0]
    within = np.zeros((n, n), bool)
    for i, j in together:
        within[i, j] = True
    tp, fp = int((within & positive).sum()), int((within & negative).sum())
    recall = {what: float(np.mean([within[min(i, j), max(i, j)] for i, j in pairs[what]])) for what in CHANGES}
    cells = " | ".join(f"{recall[w]:.0%}" for w in CHANGES)
    easy = np.mean([recall[w] for w in EASY])
    every = np.mean([recall[w] for w in CHANGES])
    precision = tp / (tp + fp) if tp + fp else 1.0
    print(f"| `_duplicates` by {by} | {DEFAULT_MAX_DISTANCE[by]} | {cells} | {easy:.0%} | {every:.0%} | "
          f"{precision:.2%} ({fp} FP) |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheels", required=True, help="a directory holding the three wheels")
    parser.add_argument("--scratch", default="/tmp/istore-robustness")
    args = parser.parse_args()

    scratch = Path(args.scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    (scratch / "pictures").mkdir(parents=True)
    setup(scratch / "data")
    from recognition.duplicates import DEFAULT_MAX_DISTANCE

    globals()["DEFAULT_MAX_DISTANCE"] = DEFAULT_MAX_DISTANCE
    items = build_set(args.wheels, scratch / "pictures")
    store(items)
    matrices = distance_matrices(stored_rows(items))
    positive, negative, pairs = relations(items)
    n_originals = sum(1 for item in items if item[3] is None)
    print(f"{len(items)} items: {n_originals} originals from {len(PHOTOS)} photographs, "
          f"{len(items) - n_originals} copies; {int(positive.sum())} duplicate pairs, "
          f"{int(negative.sum())} pairs of different photographs\n")
    print("| feature | threshold | " + " | ".join(CHANGES) + " | q30/resize/bright | all | precision |")
    print("|---|---|" + "---|" * len(CHANGES) + "---|---|---|")
    for name, matrix in matrices.items():
        report(name + " (best at 99 %)", matrix, positive, negative, pairs,
               best_threshold(matrix, positive, negative, pairs))
        if name in DEFAULT_MAX_DISTANCE:
            report(name + " (default)", matrix, positive, negative, pairs, DEFAULT_MAX_DISTANCE[name])
    for by in DEFAULT_MAX_DISTANCE:
        report_groups(by, duplicates_verb(items, by), positive, negative, pairs)


if __name__ == "__main__":
    main()
