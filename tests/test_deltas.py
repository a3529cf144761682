"""Paired differences vs base: the metrics as the benchmarks aggregate them, paired intervals."""
import numpy as np
import pytest

from prefalign.deltas import aligned, deltas_markdown, deltas_table, paired_delta
from prefalign.metrics import METRICS
from prefalign.lmms_tasks import utils as task_utils
from prefalign.settings import TablesSettings

AGGREGATES = {"pope_accuracy": task_utils.pope_accuracy, "pope_f1": task_utils.pope_f1,
              "pope_yes_ratio": task_utils.pope_yes_ratio, "exact_match": task_utils.mean_score,
              "chair_i": task_utils.chair_i, "chair_s": task_utils.chair_s,
              "object_recall": task_utils.object_recall}
TCFG = TablesSettings.from_partial({"bootstrap_samples": 400, "confidence": 0.95})


def pope_rows(rng, n, p_correct):
    rows = []
    for i in range(n):
        answer = "yes" if i % 2 else "no"
        right = rng.random() < p_correct
        prediction = answer if right else ("no" if answer == "yes" else "yes")
        rows.append({"id": f"pope_{i:05d}", "answer": answer, "prediction": prediction,
                     "pope_type": ("random", "popular", "adversarial")[i % 3], "score": float(right)})
    return rows


def describe_rows(rng, n):
    return [{"id": f"d{i}", "mentions": int(m), "hallucinated": int(rng.integers(0, m + 1)), "objects": 3,
             "recalled": int(rng.integers(0, 4))} for i, m in enumerate(rng.integers(0, 5, n))]


def test_every_metric_equals_the_benchmarks_own_aggregate():
    rng = np.random.default_rng(0)
    rows = {"prefalign_pope": pope_rows(rng, 90, 0.7), "prefalign_describe": describe_rows(rng, 40),
            "prefalign_vqa": [{"id": str(i), "score": float(rng.random() < 0.4)} for i in range(50)]}
    for m in METRICS:
        if m.metric in AGGREGATES:
            assert m.value(rows[m.task]) == pytest.approx(AGGREGATES[m.metric](rows[m.task]), abs=1e-12), m.metric
        else:  # a POPE split: accuracy over that split's items
            split = [r for r in rows[m.task] if r["pope_type"] == m.metric.rsplit("_", 1)[1]]
            assert m.value(rows[m.task]) == pytest.approx(task_utils.pope_accuracy(split), abs=1e-12)
            assert m.n_items(rows[m.task]) == len(split) == 30


def test_paired_interval_sees_a_small_shift_that_unpaired_noise_would_hide():
    # 3000 items; the run fixes 60 of the base's wrong answers (2 points) and breaks none
    rng = np.random.default_rng(1)
    base = pope_rows(rng, 3000, 0.8)
    run = [dict(r) for r in base]
    fixed = [r for r in run if r["score"] == 0][:60]
    for r in fixed:
        r["score"], r["prediction"] = 1.0, r["answer"]
    acc = METRICS[0]
    delta, low, high = paired_delta(acc, base, [run], 1000, 0.95)
    assert delta == pytest.approx(0.02)
    assert 0 < low < delta < high < 0.03  # a 2-point gain resolved to well under +-1 point
    assert paired_delta(acc, base, [base], 200, 0.95) == (0.0, 0.0, 0.0)


def test_seeds_are_averaged_and_items_must_match():
    base = {"prefalign_vqa": [{"id": str(i), "score": float(i % 2)} for i in range(10)]}
    good = {"prefalign_vqa": [{"id": str(i), "score": 1.0} for i in reversed(range(10))]}  # any order
    same = {"prefalign_vqa": [dict(r) for r in base["prefalign_vqa"]]}
    df = deltas_table(base, {"run": [good, same]}, TCFG)
    assert list(df.columns) == ["run", "benchmark", "metric", "delta", "ci_low", "ci_high", "n_items", "n_seeds"]
    row = df.iloc[0]
    assert (row.run, row.metric, row.n_items, row.n_seeds) == ("run", "exact_match", 10, 2)
    assert row.delta == pytest.approx(25.0)  # (+50 + 0) / 2 points
    assert "| my run | 2 | +25.0 [" in deltas_markdown(df, {"run": "my run"}, 0.95)
    with pytest.raises(ValueError, match="run x, task prefalign_vqa, seed #1: evaluation items differ"):
        aligned(base["prefalign_vqa"], good["prefalign_vqa"][:9], "run x, task prefalign_vqa, seed #1")


def test_oracle_fraction_and_label_accuracy_against_gain():
    import pandas as pd

    from prefalign.deltas import label_accuracy_vs_gain, oracle_fraction

    deltas = pd.DataFrame([{"run": r, "metric": "pope_accuracy", "benchmark": "prefalign_pope", "delta": d}
                           for r, d in (("oracle", 4.0), ("a", 2.0), ("b", -1.0), ("c", 0.5))])
    fractions = oracle_fraction(deltas, "oracle").set_index("run").pope_accuracy
    assert fractions.to_dict() == {"a": 0.5, "b": -0.25, "c": 0.125}
    accuracy = pd.DataFrame({"preference set": ["gt", "sa", "sb", "sc"], "label accuracy": [1.0, 0.7, 0.3, 0.5]})
    points, rho = label_accuracy_vs_gain(deltas, accuracy, {"oracle": "gt", "a": "sa", "b": "sb", "c": "sc"})
    assert list(points.label_accuracy) == [100.0, 70.0, 30.0, 50.0]
    assert rho.iloc[0].spearman == pytest.approx(1.0) and rho.iloc[0].runs == 4


def test_the_forest_plot_shows_each_run_and_fills_the_intervals_that_exclude_zero():
    import pandas as pd

    from prefalign.plots import forest_figure

    rows = [("good", "pope_accuracy", 5.0, 1.0, 9.0), ("null", "pope_accuracy", 0.5, -2.0, 3.0),
            ("bad", "pope_accuracy", -4.0, -6.0, -1.0), ("good", "exact_match", 1.0, -1.0, 3.0),
            ("null", "exact_match", 0.0, 0.0, 0.0), ("bad", "exact_match", 2.0, 0.5, 3.5)]
    deltas = pd.DataFrame([{"run": r, "benchmark": "b", "metric": m, "delta": d, "ci_low": lo, "ci_high": hi,
                            "n_items": 3000, "n_seeds": 2} for r, m, d, lo, hi in rows])
    fig = forest_figure(deltas, {"good": "Good run"}, 0.95)
    axes = fig.axes
    assert [a.get_title() for a in axes] == ["pope_accuracy (n=3000)", "exact_match (n=3000)"]
    assert [t.get_text() for t in axes[0].get_yticklabels()] == ["Good run", "null", "bad"]
    for ax, filled in zip(axes, ([True, False, True], [False, False, True])):
        markers = ax.collections[-1]  # the scatter of points (the error bars come first)
        expected = deltas[deltas.metric == ax.get_title().split()[0]].delta
        assert [tuple(x) for x in markers.get_offsets()] == [(d, i) for i, d in enumerate(expected)]
        faces = markers.get_facecolors()
        assert [bool(f[0] < 0.9 or f[1] < 0.9) for f in faces] == filled  # C0 is blue, the open ones white
