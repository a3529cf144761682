"""Differences vs the base model, with paired bootstrap intervals over the same items.

A run and the base model answer the same evaluation items, so the question "did training
move the benchmark?" is answered by resampling items once and recomputing both models'
aggregates on that one resample (a paired bootstrap); seeds are averaged on each resample
(the per-item mean over seeds), so seed variance is not in the interval.

Every miniature metric is a function of sums of per-item columns (`prefalign.metrics`), so
a resample is a vector of item counts and the bootstrap is one matrix product.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from .metrics import METRICS, SumMetric
from .settings import TablesSettings


def aligned(base: list[dict], run: list[dict], where: str) -> list[dict]:
    """The run's rows in the base's item order; both must hold exactly the same item ids."""
    by_id = {r["id"]: r for r in run}
    if len(by_id) != len(run) or set(by_id) != {r["id"] for r in base}:
        missing = sorted({r["id"] for r in base} ^ set(by_id))[:3]
        raise ValueError(f"{where}: evaluation items differ from the base model's (e.g. {missing}); "
                         "a paired difference needs the same items")
    return [by_id[r["id"]] for r in base]


@lru_cache(maxsize=8)
def item_counts(items: int, n: int, seed: int) -> np.ndarray:
    """[n, items]: how often each item is drawn in each of n resamples (n calls of
    rng.integers(items, size=items) in turn, from default_rng(seed)). Made once per shape:
    every metric and run over the same items shares the draws. Read-only."""
    rng = np.random.default_rng(seed)
    counts = np.stack([np.bincount(rng.integers(items, size=items), minlength=items)
                       for _ in range(n)]).astype(np.float64)
    counts.flags.writeable = False
    return counts


def paired_delta(metric: SumMetric, base: list[dict], seeds: list[list[dict]], n: int, confidence: float,
                 seed: int = 0) -> tuple[float, float, float]:
    """(delta, low, high) of mean-over-seeds(metric(run)) - metric(base), resampling items in pairs."""
    base_m = metric.matrix(base)
    seed_m = [metric.matrix(rows) for rows in seeds]
    point = np.mean([metric.combine(m.sum(0)) for m in seed_m]) - metric.combine(base_m.sum(0))
    counts = item_counts(len(base), n, seed)
    stats = np.mean([metric.combine(counts @ m) for m in seed_m], axis=0) - metric.combine(counts @ base_m)
    a = (1 - confidence) / 2
    return float(point), float(np.quantile(stats, a)), float(np.quantile(stats, 1 - a))


def deltas_table(base: dict[str, list[dict]], runs: dict[str, list[dict[str, list[dict]]]], tcfg: TablesSettings,
                 metrics=METRICS) -> pd.DataFrame:
    """One row per run, benchmark and metric: delta in points with its paired interval.
    base: task -> rows; runs: run -> one {task -> rows} per seed."""
    rows = []
    for run, per_seed in runs.items():
        for m in metrics:
            if m.task not in base:
                continue
            seeds = [aligned(base[m.task], s[m.task], f"run {run}, task {m.task}, seed #{k + 1}")
                     for k, s in enumerate(per_seed)]
            delta, low, high = paired_delta(m, base[m.task], seeds, tcfg.bootstrap_samples, tcfg.confidence)
            rows.append({"run": run, "benchmark": m.task, "metric": m.metric, "delta": 100 * delta,
                         "ci_low": 100 * low, "ci_high": 100 * high, "n_items": m.n_items(base[m.task]),
                         "n_seeds": len(seeds)})
    return pd.DataFrame(rows, columns=["run", "benchmark", "metric", "delta", "ci_low", "ci_high", "n_items",
                                       "n_seeds"])


def deltas_markdown(df: pd.DataFrame, labels: dict[str, str], confidence: float, metrics=METRICS) -> str:
    """Runs as rows, metrics as columns, 'delta [low, high]' in points; * where the interval excludes 0."""
    conf = int(round(100 * confidence))
    shown = [m for m in metrics if m.metric in set(df["metric"])]
    out = ["# Difference vs the base model (points)", "",
           f"Mean over seeds minus base, with a paired {conf}% bootstrap interval over the same items; "
           "`*` marks an interval that excludes 0. Seeds are averaged per item, so seed variance is not in "
           "the interval" + ("; with fewer than 3 seeds a run's seed variance is not estimated at all"
                             if len(df) and df["n_seeds"].min() < 3 else "") + ".",
           "Direction: " + "; ".join(f"{m.label}: {m.direction}" for m in shown) + ".", "",
           "| run | seeds | " + " | ".join(f"{m.label} (n={int(df[df.metric == m.metric].n_items.iloc[0])})"
                                         for m in shown) + " |",
           "|" + "---|" * (len(shown) + 2)]
    for run, g in df.groupby("run", sort=False):
        cells = []
        for m in shown:
            r = g[g.metric == m.metric].iloc[0]
            star = "*" if r.ci_low > 0 or r.ci_high < 0 else ""
            cells.append(f"{r.delta:+.1f} [{r.ci_low:+.1f}, {r.ci_high:+.1f}]{star}")
        out.append(f"| {labels.get(run, run)} | {int(g.n_seeds.iloc[0])} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


# The headline metric of each benchmark, for the comparisons across runs below.
HEADLINE = {"prefalign_pope": "pope_accuracy", "prefalign_vqa": "exact_match", "prefalign_describe": "object_recall"}


def oracle_fraction(deltas: pd.DataFrame, control: str) -> pd.DataFrame:
    """Each run's gain as a fraction of the positive control's gain, per headline metric
    (NaN where the control did not move that metric)."""
    headline = deltas[deltas.metric.isin(HEADLINE.values())]
    oracle = headline[headline.run == control].set_index("metric").delta
    rows = []
    for run, g in headline[headline.run != control].groupby("run", sort=False):
        row = {"run": run}
        for metric, delta in zip(g.metric, g.delta):
            gain = oracle.get(metric, np.nan)
            row[metric] = delta / gain if gain else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def label_accuracy_vs_gain(deltas: pd.DataFrame, label_accuracy: pd.DataFrame,
                           run_preferences: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per run and headline metric: its preference set's label accuracy and its gain;
    Spearman's rank correlation of the two over runs, per metric)."""
    from scipy.stats import spearmanr

    accuracy = label_accuracy.set_index("preference set")["label accuracy"]
    points = deltas[deltas.metric.isin(HEADLINE.values()) & deltas.run.map(run_preferences).isin(accuracy.index)]
    points = points.assign(preferences=points.run.map(run_preferences),
                           label_accuracy=lambda d: 100 * d.preferences.map(accuracy))
    points = points[["run", "preferences", "label_accuracy", "benchmark", "metric", "delta"]]
    correlations = []
    for metric, g in points.groupby("metric", sort=False):
        varies = g.label_accuracy.nunique() > 1 and g.delta.nunique() > 1
        rho = spearmanr(g.label_accuracy, g.delta) if len(g) >= 3 and varies else None
        correlations.append({"metric": metric, "runs": len(g),
                             "spearman": float(rho.statistic) if rho else np.nan,
                             "p": float(rho.pvalue) if rho else np.nan})
    return points.reset_index(drop=True), pd.DataFrame(correlations)


def write_deltas(out_dir: Path, samples: dict[str, list[dict]], labels: dict[str, str], tcfg: TablesSettings,
                 control: str | None) -> pd.DataFrame:
    """deltas.csv / .md / .png: every run against the base model, paired over the same items; with a
    positive control, oracle_fraction.csv / .md: each run's gain as a fraction of its gain.
    samples: model -> one {task -> rows} per seed ("base": one)."""
    from .io import atomic_path
    from .plots import forest_figure, save_figure
    from .tables import write_table

    df = deltas_table(samples["base"][0], {name: s for name, s in samples.items() if name != "base"}, tcfg)
    with atomic_path(out_dir / "deltas.csv") as tmp:
        df.to_csv(tmp, index=False, float_format="%.6f")
    with atomic_path(out_dir / "deltas.md") as tmp:
        tmp.write_text(deltas_markdown(df, labels, tcfg.confidence))
    save_figure(forest_figure(df, labels, tcfg.confidence), out_dir / "deltas.png")
    if control:
        fractions = oracle_fraction(df, control)
        fractions.insert(1, "label", fractions.run.map(lambda r: labels.get(r, r)))
        write_table(out_dir, "oracle_fraction", fractions, f"Gain as a fraction of the positive control's ({control})",
                    "Difference vs base of each run divided by the control's, per headline metric (point "
                    "estimates; NaN where the control did not move the metric; a negative fraction moved the "
                    "other way).", scale=1)
    return df


def write_label_accuracy_vs_gain(out_dir: Path, deltas: pd.DataFrame, accuracy: pd.DataFrame,
                                 run_preferences: dict[str, str], labels: dict[str, str]) -> None:
    from .plots import label_accuracy_vs_gain_figure, save_figure
    from .tables import write_table

    points, correlations = label_accuracy_vs_gain(deltas, accuracy, run_preferences)
    write_table(out_dir, "label_accuracy_vs_gain", correlations,
                "Label accuracy of the preference set against the gain of the run",
                "Spearman's rank correlation over every trained run, per headline metric, between the label "
                "accuracy of the run's preference set and its difference vs base (every point is in "
                "label_accuracy_vs_gain_points.csv).", scale=1)
    write_table(out_dir, "label_accuracy_vs_gain_points", points, "Label accuracy and gain per run", "", scale=1)
    save_figure(label_accuracy_vs_gain_figure(points, correlations, labels), out_dir / "label_accuracy_vs_gain.png")
