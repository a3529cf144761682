"""Rule paper_table: one table of a paper (config `paper_tables:`), the base model and the
table's runs on the config's benchmarks, as its own target (`prefalign.paper_tables`)."""
from __future__ import annotations

from pathlib import Path

from ..config import ConfigError
from ..evaluation import is_miniature
from ..paper_tables import heading
from ..plots import benchmark_table_figure, main_table_figure, save_figure, training_overlay_figure
from ..settings import PaperTableSettings, TablesSettings
from ..tables import benchmark_table, load_samples, main_table, write_table
from .tables import interval_note


def paper_table(*, out_dir, name: str, table: PaperTableSettings, base_dir, run_dirs: list, labels: dict[str, str],
                tables: TablesSettings, tasks: list[str], png=None, training=(None, ())) -> None:
    """`run_dirs`: the evaluation folders (`<run>.seed<seed>`) of the table's runs; with `png`
    (a paper's figure), its metrics as bars there too (real benchmarks: the measured values);
    `training`: (png, the runs' `seed<s>/train/<run>/log.csv` files), their curves overlaid."""
    models = {"base": [base_dir]}
    for run in table.runs:
        models[run] = [d for d in run_dirs if Path(d).name.startswith(f"{run}.seed")]
    miniature = [t for t in tasks if is_miniature(t)]
    if miniature and len(miniature) < len(tasks):
        raise ConfigError(f"config key 'paper_tables.{name}': a paper table compares either the miniature's "
                          f"benchmarks or real ones; evaluation.tasks mixes both ({tasks})")
    if miniature:
        df, note = main_table({m: [load_samples(d) for d in dirs] for m, dirs in models.items()}, labels,
                              tables), interval_note(tables)
    else:
        df, note = benchmark_table(models, labels, tasks, table.reported or tables.reported)
    if table.columns:
        unknown = [c for c in table.columns if c not in df.columns]
        if unknown:
            shown = [c for c in df.columns if not c.endswith((" low", " high"))]
            raise ConfigError(f"config key 'paper_tables.{name}.columns': {unknown} not among the table's "
                              f"columns {shown}")
        keep = [c for c in df.columns if c in ("model", "seeds")
                or c.removesuffix(" low").removesuffix(" high") in table.columns]
        df = df[keep]
    write_table(Path(out_dir), name, df, heading(name, table.title), note)
    if png:
        shown = [t for t in tasks if t in df.columns]
        save_figure(main_table_figure(df, title=heading(name, table.title)) if miniature else
                    benchmark_table_figure(df, shown, title=heading(name, table.title)), png)
    training_png, logs = training
    if training_png:
        save_figure(training_overlay_figure(run_logs(logs, labels), title=f"{heading(name, table.title)}: training "
                                            "curves (first seed solid, other seeds dashed)"), training_png)


def run_logs(paths, labels: dict[str, str]) -> dict:
    """(label, seed) -> the training log of `<results>/seed<seed>/train/<run>/log.csv`."""
    import pandas as pd

    logs = {}
    for path in map(Path, paths):
        run, seed = path.parent.name, int(path.parent.parent.parent.name.removeprefix("seed"))
        logs[(labels.get(run, run), seed)] = pd.read_csv(path)
    return logs
