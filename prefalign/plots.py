"""Figures of the stages and tables, drawn off-screen and written atomically."""
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


def training_curves(rows: list[dict], title: str):
    """Loss, reward margin and pair accuracy (those the objective logs) against the step."""
    import numpy as np

    plt = pyplot()
    keys = [k for k in ("loss", "reward_margin", "pair_accuracy") if k in rows[0]]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3))
    for ax, k in zip(np.atleast_1d(axes), keys):
        ax.plot([r["step"] for r in rows], [r[k] for r in rows])
        ax.set_xlabel("step"), ax.set_title(k)
    fig.suptitle(title)
    return fig
