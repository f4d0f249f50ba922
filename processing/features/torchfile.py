"""
Read the tensors of a PyTorch ``.pth`` file into numpy arrays, without torch.

The EfficientNet-Lite0 weights ship as a ``.pth`` written by ``torch.save``
in its legacy format (the one before PyTorch 1.6 switched to a zip archive):
four pickles one after the other (a magic number, the protocol version,
facts about the writer's machine, then the state dict itself), a pickled list
of storage keys, and each storage's raw bytes, preceded by its element count,
in that list's order. The state dict pickle names tensors through
``persistent_id`` storages and ``torch._utils._rebuild_tensor_v2``.

Installing torch (hundreds of MB) only to read 19 MB of floats is what this
module avoids. Its unpickler resolves nothing but the few names such a file
uses (``collections.OrderedDict``, the typed storage classes and the tensor
rebuild functions), so the file cannot run code on load, whatever it holds.
"""
import collections
import pickle
import struct

import numpy as np

MAGIC = 0x1950A86A20F9469CFC6C
PROTOCOL = 1001
STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class UnreadableWeights(ValueError):
    """The file is not a legacy-format PyTorch state dict this reader knows."""


class _StorageType:
    def __init__(self, name):
        self.dtype = np.dtype(STORAGE_DTYPES[name]).newbyteorder("<")


class _TensorRef:
    """A tensor named in the state dict before its storage's bytes are read."""

    def __init__(self, key, offset, size, stride):
        self.key, self.offset, self.size, self.stride = key, offset, tuple(size), tuple(stride)


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    return _TensorRef(storage, storage_offset, size, stride)


class _Unpickler(pickle.Unpickler):
    def __init__(self, handle):
        super().__init__(handle)
        self.storages = {}  # key -> (dtype, element count)

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise UnreadableWeights(f"the weights file names {module}.{name}, which a state dict does not need")

    def persistent_load(self, saved_id):
        if not isinstance(saved_id, tuple) or len(saved_id) < 5 or saved_id[0] != "storage":
            raise UnreadableWeights(f"unexpected persistent id {saved_id!r:.80}")
        _, storage_type, key, _location, count = saved_id[:5]
        if not isinstance(storage_type, _StorageType):
            raise UnreadableWeights("a storage of an unknown type")
        self.storages[key] = (storage_type.dtype, int(count))
        return key


def load_state_dict(path):
    """``{name: numpy array}`` of the legacy-format ``torch.save`` file at ``path``."""
    with open(path, "rb") as handle:
        try:
            header = [pickle.load(handle) for _ in range(3)]
        except Exception as err:  # noqa: BLE001 - any parse failure means "not this format"
            raise UnreadableWeights(f"{path} is not a legacy PyTorch file: {err}") from None
        if header[0] != MAGIC or header[1] != PROTOCOL:
            raise UnreadableWeights(f"{path} is not a legacy PyTorch file (magic {header[0]!r}, protocol {header[1]!r})")
        if not header[2].get("little_endian", False):
            raise UnreadableWeights(f"{path} was written on a big-endian machine")
        unpickler = _Unpickler(handle)
        state = unpickler.load()
        keys = pickle.load(handle)
        buffers = {}
        for key in keys:
            dtype, count = unpickler.storages[key]
            (stored,) = struct.unpack("<q", handle.read(8))
            if stored != count:
                raise UnreadableWeights(f"storage {key} holds {stored} elements, the state dict said {count}")
            raw = handle.read(count * dtype.itemsize)
            if len(raw) != count * dtype.itemsize:
                raise UnreadableWeights(f"{path} is truncated in storage {key}")
            buffers[key] = np.frombuffer(raw, dtype=dtype)
    tensors = {}
    for name, ref in state.items():
        if not isinstance(ref, _TensorRef):
            raise UnreadableWeights(f"state dict entry {name!r} is not a tensor")
        base = buffers[ref.key]
        itemsize = base.dtype.itemsize
        last = ref.offset + sum((size - 1) * step for size, step in zip(ref.size, ref.stride) if size)
        if ref.offset < 0 or min(ref.stride, default=0) < 0 or (all(ref.size) and last >= len(base)):
            raise UnreadableWeights(f"state dict entry {name!r} lies outside its storage")
        view = np.lib.stride_tricks.as_strided(
            base[ref.offset :],
            shape=ref.size,
            strides=tuple(step * itemsize for step in ref.stride),
            writeable=False,
        )
        tensors[name] = np.array(view, dtype=base.dtype.newbyteorder("="))  # a copy, 0-d kept 0-d
    return tensors
