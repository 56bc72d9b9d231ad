"""ONNX Runtime session, batching and activations, checked against onnx's reference evaluator."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from pipeline.card import OutputSpec
from pipeline.postprocess import positive_labels, scores_from_logits
from pipeline.repository import LoadedModel, ModelRepository
from pipeline.runner import OnnxRunner
from tests.unit.pipeline.model_factory import card_for, evaluate, linear_graph, write_model

BUNDLED = Path(__file__).resolve().parents[3] / "models"
TINY = BUNDLED / "tiny" / "1" / "model.onnx"


def load(
    root: Path, shape: tuple[int | str, ...] = ("N", 1, 16, 16), **card: object
) -> LoadedModel:
    write_model(root, linear_graph(shape), card_for(**card))  # type: ignore[arg-type]
    return ModelRepository(root).load("linear")


def inputs(count: int, shape: tuple[int, ...] = (1, 16, 16), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (count, *shape)).astype(np.float32)


def reference(path: Path, batch: np.ndarray) -> np.ndarray:
    return np.concatenate([evaluate(path, x[None]) for x in batch])


@pytest.mark.parametrize("count", [1, 3, 8])
def test_agrees_with_reference_evaluator(tmp_path: Path, count: int) -> None:
    model = load(tmp_path)
    batch = inputs(count)
    raw = OnnxRunner(model).run(batch)
    assert raw.shape == (count, 3)
    np.testing.assert_allclose(raw, reference(model.path, batch), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("static", "count"), [(1, 5), (4, 10), (4, 4), (4, 3)])
def test_static_batch_graphs_are_looped_and_padded(tmp_path: Path, static: int, count: int) -> None:
    model = load(tmp_path, (static, 1, 16, 16))
    runner = OnnxRunner(model)
    assert runner.static_batch == static
    batch = inputs(count)
    np.testing.assert_allclose(
        runner.run(batch), reference(model.path, batch), rtol=1e-5, atol=1e-5
    )


def test_nhwc_graph(tmp_path: Path) -> None:
    model = load(tmp_path, ("N", 16, 16, 3), layout="NHWC", channels=3)
    batch = inputs(3, (16, 16, 3))
    np.testing.assert_allclose(
        OnnxRunner(model).run(batch), reference(model.path, batch), rtol=1e-5, atol=1e-5
    )


@pytest.mark.skipif(not TINY.is_file(), reason="models/tiny/1/model.onnx not built")
def test_tiny_model_agrees_with_reference_evaluator() -> None:
    model = ModelRepository(BUNDLED).load("tiny:1")
    spec = model.card.input
    batch = inputs(model.card.batch_size + 3, (spec.channels, spec.height, spec.width), seed=3)
    raw = OnnxRunner(model).run(batch)
    assert raw.shape == (len(batch), len(model.card.output.labels))
    np.testing.assert_allclose(raw, reference(model.path, batch), rtol=1e-4, atol=1e-5)


def test_changed_file_is_refused(tmp_path: Path) -> None:
    from pipeline.errors import ModelError

    model = load(tmp_path)
    model.path.write_bytes(linear_graph(seed=1).SerializeToString())
    with pytest.raises(ModelError) as caught:
        OnnxRunner(model)
    assert caught.value.field == "sha256"


LABELS = ("a", "b", "c")


def test_sigmoid_is_stable_at_extremes() -> None:
    output = OutputSpec("y", "sigmoid", LABELS)
    raw = np.array([[0.0, 2.0, -2.0], [1000.0, -1000.0, 40.0]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow warning would be an error
        scores = scores_from_logits(raw, output)
    assert scores[0] == pytest.approx(
        {"a": 0.5, "b": 1 / (1 + np.exp(-2)), "c": 1 / (1 + np.exp(2))}
    )
    assert scores[1] == {"a": 1.0, "b": 0.0, "c": 1.0}


def test_softmax_is_stable_and_sums_to_one() -> None:
    output = OutputSpec("y", "softmax", LABELS)
    raw = np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, -1000.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = scores_from_logits(raw, output)
    e = np.exp([1.0, 2.0, 3.0])
    assert list(scores[0].values()) == pytest.approx(list(e / e.sum()))
    assert scores[1] == pytest.approx({"a": 0.5, "b": 0.5, "c": 0.0})


def test_none_activation_passes_scores_through() -> None:
    scores = scores_from_logits(np.array([[0.1, 0.7, 0.2]]), OutputSpec("y", "none", LABELS))
    assert scores == [pytest.approx({"a": 0.1, "b": 0.7, "c": 0.2})]


def test_wrong_output_width_is_an_error() -> None:
    with pytest.raises(ValueError, match="expected"):
        scores_from_logits(np.zeros((2, 4)), OutputSpec("y", "sigmoid", LABELS))


def test_thresholds_are_inclusive_and_per_label() -> None:
    output = OutputSpec("y", "sigmoid", LABELS, {"a": 0.3, "c": 0.9})
    assert positive_labels({"a": 0.3, "b": 0.5, "c": 0.89}, output) == ["a", "b"]
    assert positive_labels({"a": 0.29, "b": 0.49, "c": 0.9}, output) == ["c"]
