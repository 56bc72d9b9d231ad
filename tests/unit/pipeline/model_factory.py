"""Small ONNX graphs and model repositories for tests, built with onnx.helper."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from pipeline.card import InputSpec, ModelCard, OutputSpec, PreprocessSpec

LABELS = ("Atelectasis", "Effusion", "Nodule")


def linear_graph(
    shape: tuple[int | str, ...] = ("N", 1, 16, 16),
    labels: int = len(LABELS),
    *,
    seed: int = 0,
    input_name: str = "input",
    output_name: str = "logits",
    input_type: int = TensorProto.FLOAT,
    output_dims: tuple[int | str, ...] | None = None,
) -> onnx.ModelProto:
    """Flatten -> MatMul -> Add: logits linear in the pixels, whatever the layout."""
    rng = np.random.default_rng(seed)
    features = int(np.prod([d for d in shape[1:] if isinstance(d, int)]))
    weight = rng.normal(0.0, 2.0 / np.sqrt(features), (features, labels)).astype(np.float32)
    bias = rng.normal(0.0, 0.5, labels).astype(np.float32)
    nodes = [
        helper.make_node("Cast", [input_name], ["as_float"], to=TensorProto.FLOAT),
        helper.make_node("Flatten", ["as_float"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "weight"], ["product"]),
        helper.make_node("Add", ["product", "bias"], [output_name]),
    ]
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info(input_name, input_type, list(shape))],
        [
            helper.make_tensor_value_info(
                output_name, TensorProto.FLOAT, list(output_dims or (shape[0], labels))
            )
        ],
        [numpy_helper.from_array(weight, "weight"), numpy_helper.from_array(bias, "bias")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def card_for(
    name: str = "linear",
    version: str = "1",
    *,
    layout: str = "NCHW",
    channels: int = 1,
    size: tuple[int, int] = (16, 16),
    batch_size: int = 4,
    **overrides: Any,
) -> ModelCard:
    card = ModelCard(
        name=name,
        version=version,
        description="test model",
        input=InputSpec("input", layout, channels, *size),
        preprocess=PreprocessSpec(mean=(0.5,), std=(0.25,)),
        output=OutputSpec("logits", "sigmoid", LABELS, {"Nodule": 0.3}),
        batch_size=batch_size,
        sha256="0" * 64,
    )
    return replace(card, **overrides)


def write_model(
    root: Path,
    model: onnx.ModelProto,
    card: ModelCard,
    *,
    sha256: str | None = None,
    card_data: dict[str, Any] | None = None,
) -> Path:
    """Write ``<root>/<name>/<version>/model.onnx`` and its card (sha256 filled in)."""
    directory = root / card.name / card.version
    directory.mkdir(parents=True, exist_ok=True)
    data = model.SerializeToString()
    (directory / "model.onnx").write_bytes(data)
    card = replace(card, sha256=sha256 or hashlib.sha256(data).hexdigest())
    data_dict = card.to_dict() if card_data is None else card_data
    (directory / "model.json").write_text(json.dumps(data_dict), encoding="utf-8")
    return directory / "model.onnx"


def evaluate(path: Path, batch: np.ndarray) -> np.ndarray:
    """The graph's first output from onnx's pure-Python reference evaluator."""
    outputs = ReferenceEvaluator(str(path)).run(None, {"input": batch})
    assert isinstance(outputs, list)
    return np.asarray(outputs[0])
