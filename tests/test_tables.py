import numpy as np
import pandas as pd

from prefalign.lmms_tasks.utils import chair_i, pope_f1
from prefalign.tables import hierarchical_bootstrap, to_markdown


def test_point_is_mean_over_seeds_and_interval_contains_it():
    seeds = [[{"score": 1.0}] * 30 + [{"score": 0.0}] * 10, [{"score": 1.0}] * 20 + [{"score": 0.0}] * 20]
    mean = lambda rows: float(np.mean([r["score"] for r in rows]))  # noqa: E731
    p, lo, hi = hierarchical_bootstrap(seeds, mean, 500, 0.95)
    assert p == (0.75 + 0.5) / 2
    assert lo < p < hi and lo >= 0.4 and hi <= 0.85


def test_interval_collapses_without_variation():
    rows = [{"score": 1.0}] * 10
    assert hierarchical_bootstrap([rows, rows], lambda r: 1.0, 100, 0.95) == (1.0, 1.0, 1.0)


def test_benchmark_aggregates():
    rows = [{"prediction": "yes", "answer": "yes"}, {"prediction": "yes", "answer": "no"},
            {"prediction": "no", "answer": "yes"}, {"prediction": "other", "answer": "no"}]
    assert pope_f1(rows) == 0.5  # precision 1/2, recall 1/2
    assert chair_i([{"mentions": 4, "hallucinated": 1}, {"mentions": 0, "hallucinated": 0}]) == 0.25


def test_markdown_renders_intervals_in_percent():
    df = pd.DataFrame([{"model": "base", "acc": 0.5, "acc low": 0.4, "acc high": 0.6}])
    assert "| base | 50.0 [40.0, 60.0] |" in to_markdown(df, "t")
