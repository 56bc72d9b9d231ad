"""Detection metrics against the generator's ground truth (used by the demo, tests, benchmark)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Confusion:
    true_positive: int
    false_positive: int
    true_negative: int
    false_negative: int

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[bool, bool]]) -> Confusion:
        """``pairs`` are (truth, flagged) per image."""
        tp = fp = tn = fn = 0
        for truth, flagged in pairs:
            tp += truth and flagged
            fp += (not truth) and flagged
            tn += (not truth) and (not flagged)
            fn += truth and (not flagged)
        return cls(tp, fp, tn, fn)

    @property
    def total(self) -> int:
        return self.true_positive + self.false_positive + self.true_negative + self.false_negative

    @property
    def accuracy(self) -> float:
        return (self.true_positive + self.true_negative) / self.total if self.total else 0.0

    @property
    def sensitivity(self) -> float:
        positives = self.true_positive + self.false_negative
        return self.true_positive / positives if positives else 0.0

    @property
    def specificity(self) -> float:
        negatives = self.true_negative + self.false_positive
        return self.true_negative / negatives if negatives else 0.0


def roc_auc(truth: Sequence[bool], scores: Sequence[float]) -> float:
    """Area under the ROC curve: the probability that a positive outscores a negative.

    Computed by ranking (Mann-Whitney U) with ties counted as one half, so it needs no
    threshold and no scikit-learn.
    """
    positives = [s for t, s in zip(truth, scores, strict=True) if t]
    negatives = [s for t, s in zip(truth, scores, strict=True) if not t]
    if not positives or not negatives:
        raise ValueError("ROC AUC needs at least one positive and one negative")
    wins = 0.0
    for p in positives:
        for n in negatives:
            wins += 1.0 if p > n else 0.5 if p == n else 0.0
    return wins / (len(positives) * len(negatives))
