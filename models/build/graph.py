"""Small, deterministic ONNX graph helpers for the bundled models.

A :class:`GraphBuilder` appends nodes and initializers with names taken from per-prefix counters
(``conv_0``, ``conv_1``, ...), so the same build code always yields the same graph. It tracks the
(channels, height, width) of every tensor it makes (batch excluded) to count multiply-accumulates
and parameters for the model card.

:func:`write_model` serializes with fixed producer fields, no timestamps and deterministic
protobuf serialization, then writes ``model.onnx`` and ``model.json`` (skipping a file whose bytes
are already what would be written) and returns the card with its sha256 filled in.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from pipeline.card import ModelCard

OPSET = 17  # ONNX Runtime >= 1.18 (setup.cfg's floor) runs it
IR_VERSION = 8
PRODUCER_NAME = "medflow-models"
PRODUCER_VERSION = "1"
BATCH = "N"  # name of the dynamic batch dimension

Shape = tuple[int, int, int]  # (channels, height, width), batch excluded


@dataclass(frozen=True)
class BuiltModel:
    """What one model module returns: the graph and its card (sha256 still unset)."""

    model: onnx.ModelProto
    card: ModelCard


@dataclass(frozen=True)
class WrittenModel:
    card: ModelCard
    path: Path
    size: int


def he_normal(rng: np.random.Generator, shape: tuple[int, ...], gain: float = 2.0) -> np.ndarray:
    """float32 N(0, gain / fan_in), fan_in = prod(shape[1:]) (He et al. 2015 for gain=2)."""
    fan_in = int(np.prod(shape[1:]))
    scale = np.float32(np.sqrt(gain / fan_in))
    return rng.standard_normal(shape, dtype=np.float32) * scale


class GraphBuilder:
    """Builds one ONNX graph with an NCHW float32 input whose batch dimension is dynamic."""

    def __init__(self, name: str, seed: int = 0) -> None:
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.shapes: dict[str, Shape] = {}
        self.macs = 0
        self.params = 0
        self._counts: Counter[str] = Counter()
        self._inputs: list[onnx.ValueInfoProto] = []

    # -- names, inputs, constants -------------------------------------------------------------

    def fresh(self, prefix: str) -> str:
        index = self._counts[prefix]
        self._counts[prefix] += 1
        return f"{prefix}_{index}"

    def input(self, name: str, shape: Shape) -> str:
        dims: list[str | int] = [BATCH, *shape]
        self._inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, dims))
        self.shapes[name] = shape
        return name

    def const(self, prefix: str, array: np.ndarray, *, learned: bool = True) -> str:
        """Add an initializer; ``learned`` ones count as parameters (not BN running stats)."""
        name = self.fresh(prefix)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        if learned:
            self.params += int(array.size)
        return name

    def node(self, op: str, inputs: list[str], shape: Shape | None, **attrs: Any) -> str:
        """Append one node with a single output named after its op; returns the output name."""
        name = self.fresh(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        if shape is not None:
            self.shapes[name] = shape
        return name

    # -- layers ---------------------------------------------------------------------------------

    def conv(
        self,
        x: str,
        weight: np.ndarray,
        bias: np.ndarray | None = None,
        *,
        stride: int = 1,
        pads: tuple[int, int, int, int] | None = None,
    ) -> str:
        """Conv with weight (out, in, kh, kw); ``pads`` is (top, left, bottom, right)."""
        c_in, h, w = self.shapes[x]
        c_out, w_in, kh, kw = weight.shape
        assert w_in == c_in, f"conv on {x}: weight wants {w_in} channels, input has {c_in}"
        if pads is None:
            pads = (kh // 2, kw // 2, kh // 2, kw // 2)
        h_out = (h + pads[0] + pads[2] - kh) // stride + 1
        w_out = (w + pads[1] + pads[3] - kw) // stride + 1
        self.macs += c_out * h_out * w_out * c_in * kh * kw
        inputs = [x, self.const("w", weight.astype(np.float32))]
        if bias is not None:
            inputs.append(self.const("b", bias.astype(np.float32)))
        attrs = {"kernel_shape": [kh, kw], "strides": [stride, stride], "pads": list(pads)}
        return self.node("Conv", inputs, (c_out, h_out, w_out), **attrs)

    def batchnorm(
        self,
        x: str,
        scale: np.ndarray,
        shift: np.ndarray,
        mean: np.ndarray,
        var: np.ndarray,
        eps: float = 1e-5,
    ) -> str:
        inputs = [x, self.const("bn_scale", scale), self.const("bn_shift", shift)]
        inputs += [self.const("bn_mean", mean, learned=False)]
        inputs += [self.const("bn_var", var, learned=False)]
        return self.node("BatchNormalization", inputs, self.shapes[x], epsilon=eps)

    def split(self, x: str, parts: int) -> list[str]:
        """Split the channels of x into ``parts`` equal tensors."""
        c, h, w = self.shapes[x]
        names = [self.fresh("split") for _ in range(parts)]
        self.nodes.append(helper.make_node("Split", [x], names, name=names[0] + "_op", axis=1))
        for name in names:
            self.shapes[name] = (c // parts, h, w)
        return names

    def relu(self, x: str) -> str:
        return self.node("Relu", [x], self.shapes[x])

    def maxpool(self, x: str, kernel: int, stride: int, pad: int = 0) -> str:
        return self._pool("MaxPool", x, kernel, stride, pad)

    def avgpool(self, x: str, kernel: int, stride: int, pad: int = 0) -> str:
        return self._pool("AveragePool", x, kernel, stride, pad)

    def _pool(self, op: str, x: str, kernel: int, stride: int, pad: int) -> str:
        c, h, w = self.shapes[x]
        shape = (c, (h + 2 * pad - kernel) // stride + 1, (w + 2 * pad - kernel) // stride + 1)
        attrs = {"kernel_shape": [kernel, kernel], "strides": [stride, stride]}
        return self.node(op, [x], shape, pads=[pad] * 4, **attrs)

    def global_avgpool(self, x: str) -> str:
        return self.node("GlobalAveragePool", [x], (self.shapes[x][0], 1, 1))

    def global_maxpool(self, x: str) -> str:
        return self.node("GlobalMaxPool", [x], (self.shapes[x][0], 1, 1))

    def concat(self, xs: list[str]) -> str:
        c = sum(self.shapes[x][0] for x in xs)
        _, h, w = self.shapes[xs[0]]
        return self.node("Concat", xs, (c, h, w), axis=1)

    def flatten(self, x: str) -> str:
        c, h, w = self.shapes[x]
        return self.node("Flatten", [x], (c * h * w, 1, 1), axis=1)

    def gemm(self, x: str, weight: np.ndarray, bias: np.ndarray) -> str:
        """Fully connected layer on a [N, in] tensor; weight is (out, in) as in torch.Linear."""
        out_features, in_features = weight.shape
        self.macs += out_features * in_features
        w = self.const("fc_w", weight.astype(np.float32))
        b = self.const("fc_b", bias.astype(np.float32))
        return self.node("Gemm", [x, w, b], (out_features, 1, 1), transB=1)

    # -- the model ------------------------------------------------------------------------------

    def model(self, output: str, out_name: str, doc: str) -> onnx.ModelProto:
        """Finish the graph: rename the last node's output to ``out_name`` ([N, features])."""
        last = self.nodes[-1]
        assert list(last.output) == [output], "the output must be the last node's output"
        last.output[0] = out_name
        features = self.shapes[output][0]
        out = helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [BATCH, features])
        graph = helper.make_graph(
            self.nodes, self.name, self._inputs, [out], initializer=self.initializers
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name=PRODUCER_NAME,
            producer_version=PRODUCER_VERSION,
            doc_string=doc,
        )
        model.ir_version = IR_VERSION
        return model


def model_bytes(model: onnx.ModelProto) -> bytes:
    return model.SerializeToString(deterministic=True)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def card_json(card: ModelCard) -> bytes:
    return (json.dumps(card.to_dict(), indent=2, sort_keys=True) + "\n").encode()


def write_model(root: Path, built: BuiltModel) -> WrittenModel:
    """Write ``<root>/<name>/<version>/model.onnx`` and ``model.json``; return the final card."""
    data = model_bytes(built.model)
    card = dataclasses.replace(built.card, sha256=sha256_hex(data))
    card.validate()
    folder = root / card.name / card.version
    folder.mkdir(parents=True, exist_ok=True)
    _write_if_changed(folder / "model.onnx", data)
    _write_if_changed(folder / "model.json", card_json(card))
    return WrittenModel(card=card, path=folder / "model.onnx", size=len(data))


def _write_if_changed(path: Path, data: bytes) -> None:
    """Leave an identical file alone (mtime too); otherwise replace it atomically."""
    if path.exists() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
