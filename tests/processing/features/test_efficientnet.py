"""The EfficientNet-Lite0 graph built from the shipped weights (processing/features/efficientnet.py)."""
import numpy as np
import pytest

from processing.features import efficientnet, torchfile


@pytest.fixture(scope="module")
def weights():
    return torchfile.load_state_dict(efficientnet.weights_path())


def test_tensorflow_same_padding_puts_the_odd_pixel_last():
    assert efficientnet.same_pads(224, 3, 2) == (0, 1, 112), "the stem pads bottom/right only"
    assert efficientnet.same_pads(56, 5, 2) == (1, 2, 28)
    assert efficientnet.same_pads(14, 5, 1) == (2, 2, 14)


def test_a_missing_weight_is_refused(weights):
    partial = dict(weights)
    del partial["_blocks.3._depthwise_conv.weight"]
    with pytest.raises(torchfile.UnreadableWeights, match="_blocks.3._depthwise_conv.weight"):
        efficientnet.build_graph(partial)


def test_weights_of_another_network_are_refused(weights):
    extra = {**weights, "_blocks.16._project_conv.weight": np.zeros((1, 1, 1, 1), np.float32)}
    with pytest.raises(torchfile.UnreadableWeights, match="does not use"):
        efficientnet.build_graph(extra)


def test_a_batch_gives_one_embedding_and_one_score_row_per_image():
    batch = np.zeros((2, 3, 224, 224), np.float32)
    embedding, logits = efficientnet.model().run(batch)
    assert embedding.shape == (2, 1280) and logits.shape == (2, 1000)
    assert (embedding >= 0).all(), "pooled ReLU6 features are never negative"


def test_weights_other_than_the_pinned_file_are_refused(tmp_path):
    data = bytearray(open(efficientnet.weights_path(), "rb").read())
    data[-1] ^= 1
    changed = tmp_path / "changed.pth"
    changed.write_bytes(bytes(data))
    with pytest.raises(torchfile.UnreadableWeights, match="not the pinned"):
        efficientnet.Model(str(changed))
