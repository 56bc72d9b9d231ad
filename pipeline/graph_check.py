"""Does an ONNX graph take and give what its card says? Each mismatch names the card field."""

from __future__ import annotations

import onnx
from google.protobuf.message import DecodeError

from pipeline.card import ModelCard
from pipeline.errors import ModelError

FLOAT_OUTPUTS = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE)


def check_graph(data: bytes, card: ModelCard) -> None:
    """Check the graph's input and output against the card.

    Parameters
    ----------
    data : bytes
        The serialised ``model.onnx`` (external tensor data, if any, is not read).
    card : ModelCard
        The input must exist, be the only input without an initializer, be float32 of rank 4
        with static dims (where static) equal to the card's layout, channels, height and width;
        the output must exist, be floating point, and end in ``len(card.output.labels)``.

    Raises
    ------
    ModelError
        ``field`` is the card entry that disagrees: "model", "input.name", "input.layout",
        "input.channels", "input.height", "input.width", "output.name" or "output.labels".
    """
    try:
        graph = onnx.load_model_from_string(data).graph
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ModelError("model.onnx is not a readable ONNX model", field="model") from exc
    _check_input(graph, card)
    _check_output(graph, card)


def _check_input(graph: onnx.GraphProto, card: ModelCard) -> None:
    spec = card.input
    initialised = {tensor.name for tensor in graph.initializer}
    fed = [value for value in graph.input if value.name not in initialised]
    names = [value.name for value in fed]
    if spec.name not in names:
        raise ModelError(f"graph has no input {spec.name!r}; inputs: {names}", field="input.name")
    if len(names) > 1:
        raise ModelError(
            f"graph needs more inputs than the card feeds: {names}", field="input.name"
        )
    tensor = fed[0].type.tensor_type
    if tensor.elem_type != onnx.TensorProto.FLOAT:
        kind = onnx.TensorProto.DataType.Name(tensor.elem_type)
        raise ModelError(f"input {spec.name!r} is {kind}, not FLOAT", field="input.name")
    dims = _dims(tensor)
    if dims is None or len(dims) != 4:
        raise ModelError(f"input {spec.name!r} must have rank 4, has {dims}", field="input.layout")
    expected = _expected(spec.layout, spec.channels, spec.height, spec.width)
    other = "NHWC" if spec.layout == "NCHW" else "NCHW"
    if _agrees(dims[1:], expected):
        return
    if _agrees(dims[1:], _expected(other, spec.channels, spec.height, spec.width)):
        raise ModelError(f"graph input is {other} {dims}", field="input.layout")
    for field_name, want, have in zip(expected, expected.values(), dims[1:], strict=True):
        if have is not None and have != want:
            raise ModelError(f"graph input has {have}, card says {want} ({dims})", field=field_name)


def _check_output(graph: onnx.GraphProto, card: ModelCard) -> None:
    outputs = {value.name: value for value in graph.output}
    name = card.output.name
    if name not in outputs:
        raise ModelError(
            f"graph has no output {name!r}; outputs: {list(outputs)}", field="output.name"
        )
    tensor = outputs[name].type.tensor_type
    if tensor.elem_type not in FLOAT_OUTPUTS:
        kind = onnx.TensorProto.DataType.Name(tensor.elem_type)
        raise ModelError(f"output {name!r} is {kind}, not floating point", field="output.name")
    dims = _dims(tensor)
    labels = len(card.output.labels)
    if dims is not None and len(dims) < 1:
        raise ModelError(f"output {name!r} is a scalar", field="output.name")
    if dims and dims[-1] is not None and dims[-1] != labels:
        raise ModelError(
            f"output {name!r} ends in {dims[-1]} values, the card has {labels} labels",
            field="output.labels",
        )


def _expected(layout: str, channels: int, height: int, width: int) -> dict[str, int]:
    if layout == "NCHW":
        return {"input.channels": channels, "input.height": height, "input.width": width}
    return {"input.height": height, "input.width": width, "input.channels": channels}


def _agrees(dims: list[int | None], expected: dict[str, int]) -> bool:
    return all(
        have is None or have == want for have, want in zip(dims, expected.values(), strict=True)
    )


def _dims(tensor: onnx.TypeProto.Tensor) -> list[int | None] | None:
    """Static sizes, None for a symbolic or unknown one; None when the shape is unknown."""
    if not tensor.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
