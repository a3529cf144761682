"""Rule tables: the comparison tables and plots over every run and seed (`prefalign.tables`)."""
from __future__ import annotations

import json
from pathlib import Path

from ..deltas import write_deltas, write_label_accuracy_vs_gain
from ..evaluation import is_miniature
from ..io import atomic_path
from ..plots import main_table_figure, save_figure
from ..tables import (benchmark_table, diversity, label_accuracy, load_samples, main_table, pairs_with_the_top_group,
                      preference_counts, response_lengths, write_table)
from ..settings import RunSettings, TablesSettings


def tables(*, out_dir, base_dir, run_dirs, pref_files, stats_files, diversity_files, world_dir,
           runs: dict[str, RunSettings],
           order: list[str], tables: TablesSettings,
           tasks: list[str], control: str | None,
           n_seeds: int) -> None:
    """`run_dirs`: every run's evaluation folders (`<run>.seed<seed>`); `pref_files`: every
    preference file a run trains on, `stats_files` their counts; `diversity_files`: n_seeds
    response files per entry of `tables.diversity`, in its order; `order`: the runs in table
    order."""
    runs = {run: runs[run] for run in order}
    models, labels, prefs = {"base": [base_dir]}, {"base": "base"}, {}
    for run, rcfg in runs.items():
        models[run] = [d for d in run_dirs if Path(d).name.startswith(f"{run}.seed")]
        labels[run] = rcfg.label
        prefs[rcfg.preferences] = [f for f in pref_files if Path(f).stem == rcfg.preferences]
    diversity = {d["label"]: diversity_files[k * n_seeds:(k + 1) * n_seeds]
                 for k, d in enumerate(tables.diversity)}
    write_tables(out_dir, models, labels, prefs, Path(world_dir) / "pool_answers.json" if world_dir else None,
                 tables, main_rows=[r for r, c in runs.items() if c.main_table],
                 diversity_sets=diversity, tasks=tasks, control=control,
                 run_preferences={r: c.preferences for r, c in runs.items()})
    write_table(Path(out_dir), "preference_counts", preference_counts(stats_files),
                "Prompts in, records kept, prompts rejected by reason (per preference set and seed)",
                "Counts from each set's .stats.json; prompts = kept + rejected.", scale=1)


def interval_note(tcfg: TablesSettings) -> str:
    conf = int(round(100 * tcfg.confidence))
    return (f"Mean over seeds, in percent, with a {conf}% hierarchical bootstrap interval "
            f"(seeds, then items; {tcfg.bootstrap_samples} resamples).")


def write_tables(out_dir, models, labels, pref_files, answers_path, tcfg, *, main_rows,
                 diversity_sets, tasks, control: str | None = None,
                 run_preferences: dict[str, str] | None = None) -> None:
    """Every table the configuration calls for (see rules/common.smk: table_outputs).
    `control`: the positive control's run; `run_preferences`: run -> its preference set."""
    out_dir = Path(out_dir)
    miniature = [t for t in tasks if is_miniature(t)]
    note = interval_note(tcfg)
    if miniature:
        samples = {m: [load_samples(d) for d in dirs] for m, dirs in models.items()}  # parsed once
        main = main_table({m: samples[m] for m in ["base", *main_rows]}, labels, tcfg)
        write_table(out_dir, "main", main, "Miniature benchmarks", note)
        save_figure(main_table_figure(main), out_dir / "main.png")
        deltas = write_deltas(out_dir, samples, labels, tcfg, control)
        lengths = response_lengths(samples, labels, miniature, tcfg)
        write_table(out_dir, "response_length", lengths, "Response length on the benchmarks (words per response)",
                    note.replace("in percent", "in words"), scale=1)
    if answers_path is not None:  # ground truth exists in the miniature only
        overall, by_groups = label_accuracy(pref_files, answers_path, tcfg)
        write_table(out_dir, "label_accuracy", overall, "Label accuracy of preference sets against ground truth",
                    note + " Over every pair of responses in different groups; ties and reversed in percent.")
        write_table(out_dir, "label_accuracy_by_group", by_groups,
                    "Ranked groups against ground truth, per pair of groups",
                    "Shares of response pairs, in percent. Sets ranking more than 5 groups: the pairs of G1 only "
                    "(every pair is in label_accuracy_by_group.csv).", shown=pairs_with_the_top_group(by_groups))
        if miniature:
            write_label_accuracy_vs_gain(out_dir, deltas, overall, run_preferences or {}, labels)
    if diversity_sets:
        window = tcfg.mattr_window
        write_table(out_dir, "diversity", diversity(diversity_sets, window, tcfg),
                    f"Lexical diversity of sampled responses (MATTR-{window})",
                    note + f" MATTR over the words of each prompt's samples taken together (window {window}; "
                    "the type-token ratio when shorter).")
    real = [t for t in tasks if not is_miniature(t)]
    if real:
        df, bnote = benchmark_table({m: models[m] for m in ["base", *main_rows]}, labels, real, tcfg.reported)
        write_table(out_dir, "benchmarks", df, "Benchmarks", bnote)
    with atomic_path(out_dir / "sources.json") as tmp:
        tmp.write_text(json.dumps({"models": models, "preferences": pref_files, "diversity": diversity_sets},
                                  indent=1, sort_keys=True))
