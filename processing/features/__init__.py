"""
Image features computed in-process, offline, on the CPU: what ``?apply=features``
answers and what the recognition app stores for search and duplicates.

- ``hashes``: pHash (64 bits) and PDQ (256 bits, with a quality score), for
  near-duplicates: the same picture recompressed, resized, brightened.
- ``efficientnet``: EfficientNet-Lite0 on ImageNet, run by onnxruntime: a
  1280-number embedding (similar pictures, and copies that are cropped,
  rotated or mirrored) and 1000 class scores, which ``labels`` turns into a
  few readable tags.
- ``extract``: decodes a picture (or a video's frame) once, small, and
  computes all of them.

Everything here is a pure function of a local file: no keys, no requests, no
database. The model's weights come from an installed package; nothing is
downloaded.
"""
from .efficientnet import MODEL  # noqa: F401 - the embedding's model name, "name@version"

# Bump when what ``extract`` computes changes (preprocessing, hashes, tags),
# so cached and stored features are recomputed.
VERSION = f"1/{MODEL}"
