"""
Decode a picture once, small, and compute every feature from it.

The picture is decoded at a reduced size (JPEG's DCT-domain draft, then one
resize) to a working image whose short side is ``WORKING_SIDE`` (256) pixels,
EXIF orientation applied, transparency flattened onto white. All features
come from that one image, so a picture and its 50 % resize give the same
input:

- pHash and PDQ hash the whole working image;
- the embedding and labels come from its centre square of 224 pixels (224/256
  of the short side), the TensorFlow reference's evaluation crop for this
  model, normalised as it was trained ((x - 127) / 128). What lies outside
  that square (the sides of a wide picture) does not count in the embedding.

A video (by its content type, or any file that is not an image) is read at
``sec`` (0 by default) through ``processing.video.grab_frame``.

Besides what ``?apply=features`` answers, a ``Features`` record holds the
hashes of the picture's mirror image (left-right), so that a search or
duplicate finder can match a mirrored copy: PDQ computes them in the same
pass (its dihedral variant), pHash hashes the mirrored working image.
"""
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .. import imaging
from ..errors import ToolUnavailable, UnsupportedInput
from . import efficientnet, hashes, labels

WORKING_SIDE = 256
# A very long, thin picture keeps its long side under this (and its short side
# then under WORKING_SIDE), so the working image stays small.
MAX_LONG_SIDE = 4096
CROP = efficientnet.INPUT_SIZE
LABEL_COUNT = 5


@dataclass
class Features:
    phash: str
    phash_mirror: str
    pdq: str
    pdq_mirror: str
    pdq_quality: int
    embedding: np.ndarray  # float32, EMBEDDING_DIMS
    labels: list

    def as_json(self):
        """What ``?apply=features`` answers."""
        return {
            "phash": self.phash,
            "pdq": self.pdq,
            "pdq_quality": self.pdq_quality,
            "embedding": {
                "model": efficientnet.MODEL,
                "dims": efficientnet.EMBEDDING_DIMS,
                "vector": np.round(self.embedding.astype(np.float64), 6).tolist(),
            },
            "labels": self.labels,
        }


def of_file(path, content_type="", sec=0.0, video=True):
    """The Features of the image (or the video's frame at ``sec``) in the local file ``path``.

    With ``video`` false a video is UnsupportedInput like anything else that
    is not an image (no ffmpeg is started)."""
    if video and content_type.lower().startswith("video/"):
        return of_image_source(io.BytesIO(_video_frame(path, sec)))
    try:
        im = imaging.open_image(path)
    except UnsupportedInput as not_image:
        if not video:
            raise
        try:
            frame = _video_frame(path, sec)
        except UnsupportedInput:
            raise UnsupportedInput(f"{not_image.detail}; nor is it a video") from None
        except ToolUnavailable:  # no ffmpeg here: what we know is that it is not an image
            raise not_image from None
        return of_image_source(io.BytesIO(frame))
    with im:
        return of_image(im)


def of_image_source(source):
    with imaging.open_image(source) as im:
        return of_image(im)


def _video_frame(path, sec):
    try:
        from .. import video
    except ImportError as err:
        raise ToolUnavailable(f"video support is not available on this server: {err}") from None
    return video.grab_frame(path, sec)


def working_image(im):
    """The opened image ``im`` as RGB with a short side of WORKING_SIDE pixels."""
    orient = imaging.orientation(im)
    width, height = imaging.oriented_size(im, orient)
    scale = min(WORKING_SIDE / min(width, height), MAX_LONG_SIDE / max(width, height))
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    imaging.draft(im, orient, target)
    loaded = imaging.apply_orientation(imaging.load(im), orient)
    rgb = _flattened(imaging.pixel_mode(loaded))
    if rgb.size != target:
        rgb = rgb.resize(target, Image.Resampling.BICUBIC, reducing_gap=2.0)
    return rgb


def _flattened(im):
    if im.mode == "RGB":
        return im
    if im.mode in ("RGBA", "LA"):
        rgba = im.convert("RGBA")
        white = Image.new("RGB", im.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.getchannel("A"))
        return white
    return im.convert("RGB")


def model_input(rgb):
    """The centre square of ``rgb`` as the network's normalised (1, 3, 224, 224) input."""
    width, height = rgb.size
    side = max(1, round(min(width, height) * CROP / WORKING_SIDE))
    left, top = (width - side + 1) // 2, (height - side + 1) // 2
    square = rgb.crop((left, top, left + side, top + side))
    if square.size != (CROP, CROP):
        square = square.resize((CROP, CROP), Image.Resampling.BICUBIC)
    pixels = np.asarray(square, dtype=np.float32)
    normalised = (pixels - efficientnet.MEAN) / efficientnet.STD
    return np.ascontiguousarray(normalised.transpose(2, 0, 1)[None])


def of_image(im):
    """The Features of an opened (not yet loaded) PIL image."""
    rgb = working_image(im)
    pdq_hex, pdq_mirror, pdq_quality = hashes.pdq_with_mirror(rgb)
    embedding, logits = efficientnet.model().run(model_input(rgb))
    return Features(
        phash=hashes.phash(rgb),
        phash_mirror=hashes.phash(rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
        pdq=pdq_hex,
        pdq_mirror=pdq_mirror,
        pdq_quality=pdq_quality,
        embedding=embedding[0],
        labels=labels.top_tags(labels.softmax(logits[0].astype(np.float64)), LABEL_COUNT),
    )
