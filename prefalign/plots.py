"""Every figure of the stages and tables, drawn off-screen and written atomically."""
from __future__ import annotations

from .io import atomic_path


def pyplot():
    """matplotlib's pyplot on the off-screen backend (a job has no display)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path) -> None:
    # no "Software" stamp: the same figure is the same bytes whatever matplotlib version drew it
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})


def contact_sheet(processor, clean, augmented, title: str):
    """Clean views above their augmented views, in the model's pixel space undone."""
    import torch

    plt = pyplot()
    ip = processor.image_processor
    mean, std = torch.tensor(ip.image_mean)[:, None, None], torch.tensor(ip.image_std)[:, None, None]
    n = len(clean)
    fig, axes = plt.subplots(2, n, figsize=(1.4 * n, 3.0), squeeze=False)
    for row, (tensors, label) in enumerate(((clean, "clean"), (augmented, title))):
        for k in range(n):
            x = tensors[k] if tensors[k].dim() == 3 else tensors[k][0]  # anyres: the base view
            if x.dim() == 3:
                axes[row][k].imshow((x * std + mean).clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
            else:  # Qwen2-VL's flattened patches have no image layout to show
                axes[row][k].text(0.5, 0.5, f"{tuple(tensors[k].shape)}\npatches", ha="center", fontsize=6)
            axes[row][k].set_xticks([]), axes[row][k].set_yticks([])
        axes[row][0].set_ylabel(label)
    return fig


# TRL's names (training.pair_metrics); a log from before them has loss and pair_accuracy.
CURVES = (("loss", ("loss",)), ("rewards", ("rewards/chosen", "rewards/rejected")),
          ("rewards/margins", ("rewards/margins",)), ("rewards/accuracies", ("rewards/accuracies", "pair_accuracy")),
          ("log ratio per token", ("log_ratio_per_token/chosen", "log_ratio_per_token/rejected")))


def training_curves(rows: list[dict], title: str):
    """One run's loss and TRL's reward metrics against the step (those its log holds)."""
    plt = pyplot()
    panels = [(name, [k for k in keys if k in rows[0]]) for name, keys in CURVES]
    panels = [(name, keys[:1] if name == "rewards/accuracies" else keys) for name, keys in panels if keys]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 2.8), squeeze=False)
    for ax, (name, keys) in zip(axes[0], panels):
        for k in keys:
            ax.plot([r["step"] for r in rows], [r[k] for r in rows], lw=1, label=k.rsplit("/", 1)[-1])
        ax.set_xlabel("step", fontsize=7), ax.set_title(name, fontsize=8), ax.tick_params(labelsize=7)
        if len(keys) > 1:
            ax.legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def smoothed(values, window: int):
    """Trailing moving average (the first points average what there is)."""
    import numpy as np

    cumulative = np.cumsum(np.insert(np.asarray(values, dtype=float), 0, 0.0))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(0, ends - window)
    return (cumulative[ends] - cumulative[starts]) / (ends - starts)


OVERLAID = ("loss", "rewards/margins", "rewards/accuracies", "log_ratio_per_token/chosen",
            "log_ratio_per_token/rejected")


def training_overlay_figure(logs: dict, window_fraction: float = 0.05, title: str | None = None):
    """Every run's training curves in one panel per metric, over the fraction of its steps
    (runs train on sets of different sizes), smoothed over `window_fraction` of them.
    logs: (label, seed) -> per-step rows (pandas DataFrame); a run's other seeds dashed."""
    plt = pyplot()
    metrics = [m for m in OVERLAID if any(m in df.columns for df in logs.values())]
    fig, axes = plt.subplots(2, 3, figsize=(11, 6))
    axes = axes.ravel()
    colours = {}
    for (label, seed), df in logs.items():
        colour = colours.setdefault(label, f"C{len(colours) % 10}")
        first = seed == min(s for other, s in logs if other == label)
        window = max(1, round(window_fraction * len(df)))
        for ax, m in zip(axes, metrics):
            if m in df.columns:  # a run of a few steps shows its points
                ax.plot((df.step + 1) / len(df), smoothed(df[m], window), color=colour, lw=1,
                        ls="-" if first else "--", marker="o" if len(df) < 10 else None, ms=3,
                        label=label if first else None)
    for ax, m in zip(axes, metrics):
        ax.set_title(m, fontsize=8), ax.set_xlabel("fraction of training", fontsize=7), ax.tick_params(labelsize=7)
    for ax in axes[len(metrics):]:
        ax.axis("off")
    handles, names = axes[0].get_legend_handles_labels()
    axes[-1].legend(handles, names, fontsize=7, loc="center")
    fig.suptitle(title or "Training curves of every main run (first seed solid, other seeds dashed; moving "
                 f"average over {round(100 * window_fraction)}% of each run's steps)", fontsize=9)
    fig.tight_layout()
    return fig


def competence_figure(df):
    """The base model's accuracy per question family, one bar per view (competence.csv)."""
    import numpy as np

    plt = pyplot()
    views = list(dict.fromkeys(df.view))
    families = list(dict.fromkeys(df.family))
    acc = df.pivot_table(index="family", columns="view", values="accuracy", sort=False).reindex(families)
    fig, ax = plt.subplots(figsize=(1.0 * len(families) + 1.5, 3.0))
    width = 0.8 / len(views)
    for k, view in enumerate(views):
        ax.bar(np.arange(len(families)) + (k - (len(views) - 1) / 2) * width, 100 * acc[view], width, label=view)
    ax.set_xticks(range(len(families)), families, fontsize=7)
    ax.set_ylabel("accuracy (%)", fontsize=7), ax.set_ylim(0, 100), ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, title="image", title_fontsize=6)
    ax.set_title("Base model: accuracy per question family, clean and under noise", fontsize=8)
    fig.tight_layout()
    return fig


def bar_panels(names: list[str], panels: list[tuple], title: str | None = None):
    """One panel per (heading, values, errors or None), one coloured bar per name in each."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.2), squeeze=False)
    for ax, (heading, y, err) in zip(axes[0], panels):
        ax.bar(range(len(y)), y, yerr=err, capsize=3, color=[f"C{i}" for i in range(len(y))])
        ax.set_xticks(range(len(y)), names, rotation=30, ha="right", fontsize=7)
        ax.set_title(heading, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def main_table_figure(df, title: str | None = None):
    """The main table's metrics as bars with their intervals, one panel per metric."""
    import numpy as np

    from .metrics import METRICS

    panels = []
    for lab in [m.column for m in METRICS if m.column in df.columns]:
        y = df[lab].to_numpy() * 100
        panels.append((lab, y, np.vstack([y - df[lab + " low"].to_numpy() * 100,
                                          df[lab + " high"].to_numpy() * 100 - y])))
    return bar_panels(list(df["model"]), panels, title)


def benchmark_table_figure(df, tasks: list[str], title: str | None = None):
    """A real benchmark table's measured rows (not the paper's reported ones) as bars, one
    panel per benchmark; a cell that holds no number (a skipped GPT-judged task) has no bar."""
    measured = df[~df["model"].str.startswith("  ")]

    def number(cell):
        try:
            return float(cell)
        except ValueError:
            return float("nan")

    return bar_panels(list(measured["model"]), [(t, [number(v) for v in measured[t]], None) for t in tasks], title)


def label_accuracy_vs_gain_figure(points, correlations, labels: dict[str, str]):
    """Each run's gain against its preference set's label accuracy, one panel per metric."""
    import numpy as np

    plt = pyplot()
    metrics = list(dict.fromkeys(points.metric))
    fig, axes = plt.subplots(1, max(len(metrics), 1), figsize=(4.2 * max(len(metrics), 1), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        g = points[points.metric == metric]
        ax.scatter(g.label_accuracy, g.delta, s=18)
        for x, y, run in zip(g.label_accuracy, g.delta, g.run):
            ax.annotate(labels.get(run, run), (x, y), fontsize=5, alpha=0.8)
        ax.axhline(0, color="grey", lw=0.5)
        rho = correlations.set_index("metric").spearman.get(metric, np.nan)
        ax.set_title(f"{metric}: Spearman {rho:+.2f}" if rho == rho else metric, fontsize=8)
        ax.set_xlabel("label accuracy of the preference set (%)", fontsize=7)
        ax.set_ylabel("difference vs base (points)", fontsize=7)
    fig.tight_layout()
    return fig


# The headline metrics, and POPE's adversarial split: the co-occurrence the papers target.
FOREST_METRICS = ("pope_accuracy", "pope_accuracy_adversarial", "exact_match", "object_recall")


def forest_figure(deltas, labels: dict[str, str], confidence: float, metrics=FOREST_METRICS):
    """Each run's difference vs base with its paired interval (deltas.csv), one panel per
    metric; a filled marker where the interval excludes 0."""
    plt = pyplot()
    metrics = [m for m in metrics if m in set(deltas.metric)]
    runs = list(dict.fromkeys(deltas.run))
    rows = list(range(len(runs)))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.0 * len(metrics), 0.32 * len(runs) + 1.3), sharey=True,
                             squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        g = deltas[deltas.metric == metric].set_index("run").reindex(runs)
        ax.errorbar(g.delta, rows, xerr=[g.delta - g.ci_low, g.ci_high - g.delta], fmt="none", ecolor="grey", lw=1)
        excludes = ((g.ci_low > 0) | (g.ci_high < 0)).to_numpy()
        ax.scatter(g.delta, rows, s=18, zorder=3, edgecolors="C0",
                   facecolors=["C0" if e else "white" for e in excludes])
        ax.axvline(0, color="black", lw=0.6)
        ax.set_title(f"{metric} (n={int(g.n_items.max())})", fontsize=8)
        ax.set_xlabel("difference vs base (points)", fontsize=7)
        ax.tick_params(labelsize=7)
    axes[0][0].set_yticks(rows, [labels.get(r, r) for r in runs])
    axes[0][0].invert_yaxis()
    fig.suptitle(f"Paired {round(100 * confidence)}% bootstrap intervals over the same items; filled: excludes 0",
                 fontsize=8)
    fig.tight_layout()
    return fig
