"""The miniature's benchmark metrics, one home for the main table and the deltas.

Every metric is a function of sums of per-item columns (accuracy = sum(score) / n, F1 =
f(sum tp, sum fp, sum fn), CHAIR_i = sum(hallucinated) / sum(mentions), ...), so a bootstrap
resample is a vector of item counts and its value one matrix product. Each equals the
lmms-eval task's own aggregate on the same rows (`lmms_tasks/utils.py`, tested).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .world import POPE_TYPES

HIGHER, LOWER = "higher is better", "lower is better"


@dataclass(frozen=True)
class SumMetric:
    task: str
    metric: str
    label: str
    direction: str
    columns: Callable[[dict], list[float]]  # one item's summands
    combine: Callable[[np.ndarray], np.ndarray]  # [..., k] sums -> [...] value
    counts: Callable[[dict], bool] = lambda row: True  # the items it is computed over (a split)

    @property
    def column(self) -> str:
        """Its column in the main table, which states the direction where lower is better."""
        return f"{self.label} (lower better)" if self.direction == LOWER else self.label

    def n_items(self, rows: list[dict]) -> int:
        return sum(map(self.counts, rows))

    def value(self, rows: list[dict]) -> float:
        return float(self.combine(self.matrix(rows).sum(0)))

    def matrix(self, rows: list[dict]) -> np.ndarray:
        return np.array([self.columns(r) for r in rows], dtype=np.float64).reshape(len(rows), -1)


def ratio(sums: np.ndarray) -> np.ndarray:
    """sums[..., 0] / sums[..., 1], 0 where the denominator is 0."""
    num, den = sums[..., 0], sums[..., 1]
    return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)


def f1(sums: np.ndarray) -> np.ndarray:
    """F1 from summed (true positive, false positive, false negative) indicators."""
    tp, fp, fn = sums[..., 0], sums[..., 1], sums[..., 2]
    den = 2 * tp + fp + fn
    return np.where(den > 0, 2 * tp / np.where(den > 0, den, 1), 0.0)


def mean_of(task: str, metric: str, label: str, value: Callable[[dict], float], direction: str = "") -> SumMetric:
    """The mean over items of one number per item."""
    return SumMetric(task, metric, label, direction, lambda r: [value(r), 1.0], ratio)


def pope_split(split: str) -> SumMetric:
    return SumMetric("prefalign_pope", f"pope_accuracy_{split}", f"POPE acc {split}", HIGHER,
                     lambda r: [r["score"] * (r["pope_type"] == split), float(r["pope_type"] == split)], ratio,
                     counts=lambda r: r["pope_type"] == split)


METRICS = [
    mean_of("prefalign_pope", "pope_accuracy", "POPE acc", lambda r: r["score"], HIGHER),
    # POPE's three negative types as separate columns, as the real benchmark reports them
    *(pope_split(s) for s in POPE_TYPES),
    SumMetric("prefalign_pope", "pope_f1", "POPE F1", HIGHER,
              lambda r: [float(r["prediction"] == "yes" and r["answer"] == "yes"),
                         float(r["prediction"] == "yes" and r["answer"] == "no"),
                         float(r["prediction"] != "yes" and r["answer"] == "yes")], f1),
    mean_of("prefalign_pope", "pope_yes_ratio", "POPE yes-ratio", lambda r: float(r["prediction"] == "yes"),
            "closer to the true share of 'yes' is better"),
    mean_of("prefalign_vqa", "exact_match", "VQA EM", lambda r: r["score"], HIGHER),
    SumMetric("prefalign_describe", "chair_i", "CHAIR_i", LOWER, lambda r: [r["hallucinated"], r["mentions"]], ratio),
    mean_of("prefalign_describe", "chair_s", "CHAIR_s", lambda r: float(r["hallucinated"] > 0), LOWER),
    SumMetric("prefalign_describe", "object_recall", "Object recall", HIGHER,
              lambda r: [r["recalled"], r["objects"]], ratio),
]
