"""Reading PyTorch's legacy .pth format without torch (processing/features/torchfile.py)."""
import collections
import pickle
import struct
import sys
import types

import numpy as np
import pytest

from processing.features import efficientnet, torchfile


@pytest.fixture(scope="module")
def weights():
    return torchfile.load_state_dict(efficientnet.weights_path())


def test_reads_every_tensor_of_the_shipped_weights(weights):
    assert len(weights) == 296, "EfficientNet-Lite0's state dict has 296 entries"
    assert weights["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert weights["_fc.weight"].shape == (1000, 1280) and weights["_fc.bias"].shape == (1000,)
    assert weights["_bn0.num_batches_tracked"].shape == (), "scalars stay 0-dimensional"


def legacy_file(path, monkeypatch, tensors):
    """Write ``{name: (storage values, offset, size, stride)}`` as torch.save's legacy format would."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*args):  # never called: only named in the pickle
        raise AssertionError

    FloatStorage.__module__, _rebuild_tensor_v2.__module__ = "torch", "torch._utils"
    FloatStorage.__qualname__, _rebuild_tensor_v2.__qualname__ = "FloatStorage", "_rebuild_tensor_v2"
    torch.FloatStorage, utils._rebuild_tensor_v2 = FloatStorage, _rebuild_tensor_v2
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)

    class Storage:
        def __init__(self, key, values):
            self.key, self.values = key, values

    class Tensor:
        def __init__(self, storage, offset, size, stride):
            self.args = (storage, offset, size, stride, False, collections.OrderedDict())

        def __reduce__(self):
            return _rebuild_tensor_v2, self.args

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                return ("storage", FloatStorage, obj.key, "cpu", len(obj.values))
            return None

    state = collections.OrderedDict()
    storages = []
    for index, (name, (values, offset, size, stride)) in enumerate(tensors.items()):
        storages.append(Storage(str(index), values))
        state[name] = Tensor(storages[-1], offset, size, stride)
    with open(path, "wb") as handle:
        for value in (torchfile.MAGIC, torchfile.PROTOCOL, {"little_endian": True}):
            pickle.dump(value, handle, protocol=2)
        Pickler(handle, protocol=2).dump(state)
        pickle.dump([storage.key for storage in storages], handle, protocol=2)
        for storage in storages:
            handle.write(struct.pack("<q", len(storage.values)))
            handle.write(np.asarray(storage.values, dtype="<f4").tobytes())
    return path


def test_strided_tensors_are_laid_out_as_torch_would(tmp_path, monkeypatch):
    # The shipped stem's storage is channels-last: a plain reshape of the storage would scramble it.
    path = legacy_file(tmp_path / "t.pth", monkeypatch, {
        "transposed": ([0, 1, 2, 3, 4, 5], 0, (2, 3), (1, 2)),
        "offset": ([9, 9, 7, 8], 2, (2,), (1,)),
    })
    tensors = torchfile.load_state_dict(path)
    assert tensors["transposed"].tolist() == [[0, 2, 4], [1, 3, 5]], "strides are honoured"
    assert tensors["offset"].tolist() == [7, 8], "the storage offset is honoured"


def test_refuses_a_tensor_outside_its_storage(tmp_path, monkeypatch):
    path = legacy_file(tmp_path / "t.pth", monkeypatch, {"overflow": ([1, 2, 3], 1, (3,), (1,))})
    with pytest.raises(torchfile.UnreadableWeights, match="outside its storage"):
        torchfile.load_state_dict(path)


def test_refuses_a_pickle_naming_other_code(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as handle:
        for value in (torchfile.MAGIC, torchfile.PROTOCOL, {"little_endian": True}):
            pickle.dump(value, handle)
        pickle.dump(print, handle)  # a global the reader must not resolve
    with pytest.raises(torchfile.UnreadableWeights, match="builtins.print"):
        torchfile.load_state_dict(path)


def test_refuses_a_file_of_another_format(tmp_path):
    path = tmp_path / "zip.pth"
    path.write_bytes(b"PK\x03\x04 not a legacy file")
    with pytest.raises(torchfile.UnreadableWeights):
        torchfile.load_state_dict(path)


def test_refuses_a_truncated_file(tmp_path):
    source = open(efficientnet.weights_path(), "rb").read()
    path = tmp_path / "cut.pth"
    path.write_bytes(source[: len(source) // 2])
    with pytest.raises(torchfile.UnreadableWeights, match="truncated"):
        torchfile.load_state_dict(path)
