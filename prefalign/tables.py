"""Aggregate evaluation results into comparison tables and plots.

Every figure is a mean over seeds with a percentile bootstrap interval. The bootstrap is
hierarchical: resample seeds, then evaluation items within each seed, and recompute the
benchmark's own aggregate (so F1 and CHAIR are bootstrapped as the metrics they are).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .io import read_json, read_jsonl
from .lmms_tasks import utils as task_utils
from .world import correctness

# (task, metric, column label, aggregate over per-sample rows)
METRICS = [
    ("prefalign_pope", "pope_accuracy", "POPE acc", task_utils.pope_accuracy),
    ("prefalign_pope", "pope_f1", "POPE F1", task_utils.pope_f1),
    ("prefalign_pope", "pope_yes_ratio", "POPE yes-ratio", task_utils.pope_yes_ratio),
    ("prefalign_vqa", "exact_match", "VQA EM", task_utils.mean_score),
    ("prefalign_describe", "chair_i", "CHAIR_i (lower better)", task_utils.chair_i),
    ("prefalign_describe", "chair_s", "CHAIR_s (lower better)", task_utils.chair_s),
    ("prefalign_describe", "object_recall", "Object recall", task_utils.object_recall),
]


def hierarchical_bootstrap(per_seed: list[list], aggregate, n: int, confidence: float, seed: int = 0):
    """(mean, low, high) of the mean-over-seeds of `aggregate`, resampling seeds then items."""
    point = float(np.mean([aggregate(rows) for rows in per_seed]))
    rng = np.random.default_rng(seed)
    stats = np.empty(n)
    for b in range(n):
        picks = rng.integers(len(per_seed), size=len(per_seed))
        vals = []
        for s in picks:
            rows = per_seed[s]
            vals.append(aggregate([rows[i] for i in rng.integers(len(rows), size=len(rows))]))
        stats[b] = np.mean(vals)
    a = (1 - confidence) / 2
    return point, float(np.quantile(stats, a)), float(np.quantile(stats, 1 - a))


def fmt(point, low, high) -> str:
    return f"{100 * point:.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def load_samples(eval_dir) -> dict[str, list[dict]]:
    by_task: dict[str, list[dict]] = {}
    for r in read_jsonl(Path(eval_dir) / "samples.jsonl"):
        by_task.setdefault(r["task"], []).append(r)
    return by_task


def main_table(models: dict[str, list[str]], labels: dict[str, str], tcfg: dict) -> pd.DataFrame:
    """models: row name -> eval dirs (one per seed)."""
    rows = []
    for name, dirs in models.items():
        samples = [load_samples(d) for d in dirs]
        row = {"model": labels.get(name, name), "seeds": len(dirs)}
        for task, metric, label, agg in METRICS:
            if task not in samples[0]:
                continue
            p, lo, hi = hierarchical_bootstrap([s[task] for s in samples], agg,
                                               tcfg["bootstrap_samples"], tcfg["confidence"])
            row[label], row[label + " low"], row[label + " high"] = p, lo, hi
        rows.append(row)
    return pd.DataFrame(rows)


def label_accuracy(pref_files: dict[str, list[str]], answers_path, tcfg: dict) -> pd.DataFrame:
    """How often each preference set's chosen answer is more correct than its rejected one.

    Correctness comes from the world's ground truth, which no method may read; only the
    miniature can measure this."""
    answers = read_json(answers_path)
    rows = []
    for name, files in pref_files.items():
        per_seed, ties, reversed_, n = [], 0, 0, 0
        for f in files:
            outcomes = []
            for rec in read_jsonl(f):
                gt = answers[rec["id"].split("#")[0]]
                chosen, rejected = rec["groups"][0][0]["text"], rec["groups"][-1][0]["text"]
                c = correctness(gt["family"], chosen, gt["answer"], gt["scene"])
                r = correctness(gt["family"], rejected, gt["answer"], gt["scene"])
                outcomes.append(1.0 if c > r else 0.0)
                ties += c == r
                reversed_ += c < r
                n += 1
            per_seed.append(outcomes)
        if n == 0:
            continue
        p, lo, hi = hierarchical_bootstrap(per_seed, np.mean, tcfg["bootstrap_samples"], tcfg["confidence"])
        rows.append({"preference set": name, "pairs": n, "label accuracy": p,
                     "label accuracy low": lo, "label accuracy high": hi,
                     "ties": ties / n, "reversed": reversed_ / n})
    return pd.DataFrame(rows)


def to_markdown(df: pd.DataFrame, title: str, note: str = "") -> str:
    """Render 'X', 'X low', 'X high' column triples as 'mean [low, high]' in percent."""
    cols = [c for c in df.columns if not c.endswith(" low") and not c.endswith(" high")]
    out = [f"# {title}", ""]
    if note:
        out += [note, ""]
    out.append("| " + " | ".join(cols) + " |")
    out.append("|" + "---|" * len(cols))
    for _, r in df.iterrows():
        cells = []
        for c in cols:
            if f"{c} low" in df.columns:
                cells.append(fmt(r[c], r[f"{c} low"], r[f"{c} high"]))
            elif isinstance(r[c], float):
                cells.append(f"{100 * r[c]:.1f}" if c in ("ties", "reversed") else f"{r[c]:.3f}")
            else:
                cells.append(str(r[c]))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def plot_main(df: pd.DataFrame):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [m[2] for m in METRICS if m[2] in df.columns]
    fig, axes = plt.subplots(1, len(labels), figsize=(2.6 * len(labels), 3.2))
    for ax, lab in zip(np.atleast_1d(axes), labels):
        y = df[lab].to_numpy() * 100
        err = np.vstack([y - df[lab + " low"].to_numpy() * 100, df[lab + " high"].to_numpy() * 100 - y])
        ax.bar(range(len(df)), y, yerr=err, capsize=3, color=[f"C{i}" for i in range(len(df))])
        ax.set_xticks(range(len(df)), df["model"], rotation=30, ha="right", fontsize=7)
        ax.set_title(lab, fontsize=8)
    fig.tight_layout()
    return fig


def write_tables(out_dir, models, labels, pref_files, answers_path, tcfg) -> None:
    from .io import atomic_path
    from .stages import save_figure

    out_dir = Path(out_dir)
    conf = int(round(100 * tcfg["confidence"]))
    note = (f"Mean over seeds, in percent, with a {conf}% hierarchical bootstrap interval "
            f"(seeds, then items; {tcfg['bootstrap_samples']} resamples).")
    main = main_table(models, labels, tcfg)
    labels_df = label_accuracy(pref_files, answers_path, tcfg)
    for name, df, title in (("main", main, "Miniature benchmarks"),
                            ("label_accuracy", labels_df, "Label accuracy of preference sets against ground truth")):
        with atomic_path(out_dir / f"{name}.csv") as tmp:
            df.to_csv(tmp, index=False, float_format="%.6f")
        with atomic_path(out_dir / f"{name}.md") as tmp:
            tmp.write_text(to_markdown(df, title, note))
    save_figure(plot_main(main), out_dir / "main.png")
    with atomic_path(out_dir / "sources.json") as tmp:
        tmp.write_text(json.dumps({"models": models, "preferences": pref_files}, indent=1, sort_keys=True))
