"""Features of real photographs (processing/features/extract.py): hashes, embedding, labels."""
import socket

import numpy as np
import pytest
from PIL import Image, ImageDraw

from processing.errors import UnsupportedInput
from processing.features import efficientnet, extract, hashes

from .conftest import PHOTOS, altered

# Stored when the ONNX graph was checked against PyTorch's own EfficientNet-Lite0:
# a change of weights, graph or preprocessing moves these.
CHELSEA_PHASH = "b15fe6465121175e"
CHELSEA_PDQ = "5fab5331f05ca156898e2b7729a5d2430412cdbd23f48942464526337db33ffd"
CHELSEA_COFFEE_COSINE = 0.0877


def cosine(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def hamming(first, second):
    return hashes.distance(bytes.fromhex(first), bytes.fromhex(second), len(first) * 4)


@pytest.fixture(scope="module")
def cat(chelsea):
    return extract.of_file(chelsea).as_json()


@pytest.fixture(scope="module")
def cup(coffee):
    return extract.of_file(coffee).as_json()


def test_answers_every_feature_in_its_documented_shape(cat):
    assert set(cat) == {"phash", "pdq", "pdq_quality", "embedding", "labels"}
    assert len(cat["phash"]) == 16 and len(cat["pdq"]) == 64, "hex digits: 64 and 256 bits"
    assert 0 <= cat["pdq_quality"] <= 100
    assert cat["embedding"]["model"] == "efficientnet-lite0@0.1.0"
    assert cat["embedding"]["dims"] == 1280 == len(cat["embedding"]["vector"])
    assert len(cat["labels"]) == 5 and all(0 <= label["score"] <= 1 for label in cat["labels"])


def test_the_cat_photograph_is_labelled_cat(cat):
    top = cat["labels"][0]
    assert top["label"] == "cat" and top["score"] > 0.8, f"top label {top}"


def test_the_coffee_photograph_is_labelled_espresso(cup):
    assert cup["labels"][0]["label"] == "espresso", f"labels {cup['labels']}"


def test_embedding_has_not_drifted(cat, cup):
    expected = np.load(PHOTOS / "chelsea.embedding.npy").astype(np.float64)
    assert cosine(cat["embedding"]["vector"], expected) > 0.9999, "the cat's embedding moved"
    assert abs(cosine(cat["embedding"]["vector"], cup["embedding"]["vector"]) - CHELSEA_COFFEE_COSINE) < 0.002


def test_hashes_have_not_drifted(cat):
    assert hamming(cat["phash"], CHELSEA_PHASH) <= 2 / 64, f"pHash {cat['phash']}"
    assert hamming(cat["pdq"], CHELSEA_PDQ) <= 4 / 256, f"PDQ {cat['pdq']}"


def test_a_recompressed_copy_is_near_and_another_photograph_far(chelsea, tmp_path, cat, cup):
    path = altered(chelsea, tmp_path, "q30.jpg", lambda im: im.resize((225, 150)), quality=30)
    copy = extract.of_file(path).as_json()
    assert hamming(copy["phash"], cat["phash"]) <= 0.1 and hamming(copy["pdq"], cat["pdq"]) <= 0.1
    assert cosine(copy["embedding"]["vector"], cat["embedding"]["vector"]) > 0.8, "different photographs: ~0.1"
    assert hamming(cup["phash"], cat["phash"]) > 0.3 and hamming(cup["pdq"], cat["pdq"]) > 0.3


def test_a_mirrored_copy_matches_the_mirror_hashes(chelsea, tmp_path):
    original = extract.of_file(chelsea)
    mirrored = extract.of_file(altered(chelsea, tmp_path, "flip.jpg", lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    assert hamming(mirrored.pdq, original.pdq) > 0.3, "PDQ itself does not see through a mirror"
    assert hamming(mirrored.pdq, original.pdq_mirror) <= 0.05
    assert hamming(mirrored.phash, original.phash_mirror) <= 0.05


def test_transparent_pixels_count_as_white(tmp_path):
    clear = Image.new("RGBA", (64, 64), (255, 0, 0, 0))
    ImageDraw.Draw(clear).ellipse((16, 16, 48, 48), fill=(0, 0, 255, 255))
    opaque = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(opaque).ellipse((16, 16, 48, 48), fill=(0, 0, 255))
    clear.save(tmp_path / "a.png")
    opaque.save(tmp_path / "b.png")
    assert extract.of_file(str(tmp_path / "a.png")).pdq == extract.of_file(str(tmp_path / "b.png")).pdq


@pytest.mark.parametrize("size, mode", [((1, 1), "RGB"), ((4000, 3), "L"), ((3, 3000), "P"), ((300, 200), "CMYK")])
def test_odd_sizes_and_modes_give_features(tmp_path, size, mode):
    path = tmp_path / "odd.png" if mode != "CMYK" else tmp_path / "odd.jpg"
    Image.new(mode, size).save(path)
    assert len(extract.of_file(str(path)).embedding) == 1280


def test_a_video_gives_the_features_of_its_frame_at_sec(timer_video):
    first = extract.of_file(timer_video, "video/mp4").as_json()
    later = extract.of_file(timer_video, "video/mp4", sec=2.5).as_json()
    assert first["pdq"] != later["pdq"], "testsrc's counter changes between 0 s and 2.5 s"
    assert extract.of_file(timer_video, "application/octet-stream").pdq == first["pdq"], "sniffed as a video"


def test_not_an_image_is_unsupported(not_videos):
    with pytest.raises(UnsupportedInput, match="not an image"):
        extract.of_file(not_videos["noise"])


def test_runs_with_every_outbound_connection_refused(chelsea, monkeypatch):
    def refused(*args, **kwargs):
        raise ConnectionRefusedError("the network is off in this test")

    for name in ("connect", "connect_ex", "sendto"):
        monkeypatch.setattr(socket.socket, name, refused)
    monkeypatch.setattr(socket, "getaddrinfo", refused)
    monkeypatch.setattr(socket, "create_connection", refused)
    monkeypatch.setattr(efficientnet, "_model", None)  # load the model afresh, offline
    features = extract.of_file(chelsea).as_json()
    assert features["labels"][0]["label"] == "cat"
