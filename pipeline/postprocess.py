"""Raw model outputs -> per-label probabilities and the labels at or over their thresholds."""

from __future__ import annotations

import numpy as np

from pipeline.card import OutputSpec


def scores_from_logits(raw: np.ndarray, output: OutputSpec) -> list[dict[str, float]]:
    """Apply the card's activation and name each score by its label.

    Parameters
    ----------
    raw : numpy.ndarray
        Floating point, shape ``(images, labels)``: the graph's output for a batch.
    output : OutputSpec
        ``activation``: "sigmoid" (independent labels), "softmax" (one label per image) or
        "none" (the graph already gives probabilities).

    Returns
    -------
    list of dict
        One ``{label: probability}`` per image, in label order; probabilities are float64 on
        [0, 1] for sigmoid and softmax.
    """
    logits = np.asarray(raw, np.float64)
    if logits.ndim != 2 or logits.shape[1] != len(output.labels):
        raise ValueError(f"expected (images, {len(output.labels)}) outputs, got {logits.shape}")
    if output.activation == "sigmoid":
        probabilities = sigmoid(logits)
    elif output.activation == "softmax":
        probabilities = softmax(logits)
    else:
        probabilities = logits
    return [dict(zip(output.labels, map(float, row), strict=True)) for row in probabilities]


def positive_labels(scores: dict[str, float], output: OutputSpec) -> list[str]:
    """Labels whose score is at or over their threshold (default 0.5), in label order."""
    return [label for label in output.labels if scores[label] >= output.threshold(label)]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))`` without overflow: ``exp`` only ever sees ``-|x|``."""
    e = np.exp(-np.abs(x))
    return np.asarray(np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)))


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, shifted by the row maximum so ``exp`` cannot overflow."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return np.asarray(e / e.sum(axis=-1, keepdims=True))
