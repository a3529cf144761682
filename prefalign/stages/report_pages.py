"""Rule report_pages: what the Snakemake report shows besides the tables stage's figures
(`make report`): each table as HTML, every run's training curves overlaid, the base model's
competence per question family, and a gallery of answers (`prefalign.report_pages`)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..io import atomic_path
from ..plots import competence_figure, save_figure, training_overlay_figure
from ..report_pages import gallery_page, markdown_page
from ..tables import load_samples

# Gallery: items per benchmark, and the seed that draws them.
GALLERY_ITEMS = 8
GALLERY_SEED = 0
BENCHMARKS = {"prefalign_pope": "pope", "prefalign_vqa": "vqa", "prefalign_describe": "describe"}


def column_label(target: str, labels: dict[str, str]) -> str:
    """"base", or a run's label and seed for "<run>.seed<seed>"."""
    run, _, seed = target.rpartition(".seed")
    return f"{labels.get(run, run)} (seed {seed})" if run else target


def report_pages(*, out_dir, table_files: list, train_logs: dict, labels: dict[str, str], competence=None,
                 eval_dirs: dict | None = None, world_dir=None) -> None:
    """train_logs: (run, seed) -> log.csv; eval_dirs: model -> its evaluation folder ("base"
    first, each run's first seed), for the gallery where `world_dir` holds its benchmarks."""
    out_dir = Path(out_dir)
    for path in map(Path, table_files):
        with atomic_path(out_dir / "tables" / f"{path.stem}.html") as tmp:
            tmp.write_text(markdown_page(path.read_text()))
    logs = {(labels.get(run, run), seed): pd.read_csv(path) for (run, seed), path in train_logs.items()}
    save_figure(training_overlay_figure(logs), out_dir / "training_curves.png")
    if competence:
        save_figure(competence_figure(pd.read_csv(competence)), out_dir / "competence.png")
    if world_dir:
        samples = {}
        for model, eval_dir in eval_dirs.items():
            by_task = load_samples(eval_dir)
            samples[model] = {BENCHMARKS[t]: {r["id"]: r for r in rows} for t, rows in by_task.items()
                              if t in BENCHMARKS}
        tasks = [t for t in BENCHMARKS.values() if all(t in s for s in samples.values())]
        benchmarks = {t: pd.read_parquet(Path(world_dir) / "eval" / f"{t}.parquet") for t in tasks}
        per_task = {t: {m: s[t] for m, s in samples.items()} for t in tasks}
        columns = {m: column_label(m, labels) for m in eval_dirs}
        with atomic_path(out_dir / "gallery.html") as tmp:
            tmp.write_text(gallery_page(benchmarks, per_task, columns, GALLERY_ITEMS, GALLERY_SEED))
