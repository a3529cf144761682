"""The results document of a finished run, generated from its files, never typed by hand:

    python -m prefalign.results_doc --results results --out results/results.md

It states the commit and machine it was generated on, the run's wall time and stage table
(from Snakemake's benchmark files), the base model's competence, and the run's tables as the
`tables` rule wrote them. `make reproduce` ends by writing it; a measured run that lands is
copied to `docs/results.md`.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
from pathlib import Path

import pandas as pd

from .io import atomic_path
from .paper_tables import NAME as PAPER_TABLE

# The tables a reader compares, in reading order, with what each answers.
TABLES = (
    ("main", "Main table"),
    ("deltas", "Differences vs base, paired intervals"),
    ("oracle_fraction", "Each run's gain as a fraction of the oracle's"),
    ("label_accuracy_vs_gain", "Label accuracy against gain"),
    ("label_accuracy", "Label accuracy of each preference set"),
    ("preference_counts", "Preference sets: prompts kept and rejected"),
    ("response_length", "Response length"),
    ("diversity", "Diversity of sampled responses (MATTR)"),
)


# Jobs that start more than this long after every earlier job ended belong to another sitting
# (a folder whose world was built yesterday, one stage forced again): Snakemake's own gap
# between two jobs of one run is far shorter.
SITTING_GAP_S = 60.0


def stage_times(results: Path) -> tuple[pd.DataFrame, list[tuple[float, float]]]:
    """Per stage: jobs, summed job seconds and peak RSS; and the sittings of the folder's jobs,
    (start, end) each, a job's start being its benchmark file's time minus its seconds."""
    rows, starts, ends = [], [], []
    for f in sorted((Path(results) / "benchmarks").glob("*.tsv")):
        b = pd.read_csv(f, sep="\t")
        seconds = float(b["s"].iloc[0])
        rss = b["max_rss"].iloc[0]
        rows.append({"stage": f.name.split(".")[0], "seconds": seconds,
                     "max_rss_mb": float(rss) if rss != "-" else 0.0})
        ends.append(f.stat().st_mtime)
        starts.append(ends[-1] - seconds)
    if not rows:
        raise FileNotFoundError(f"no benchmark files under {results}/benchmarks: run the workflow first")
    table = (pd.DataFrame(rows).groupby("stage", sort=False)
             .agg(jobs=("stage", "count"), seconds=("seconds", "sum"), max_rss_mb=("max_rss_mb", "max"))
             .reset_index())
    return table, sittings(list(zip(starts, ends)))


def sittings(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Merge job intervals into the spans during which jobs ran, gaps under SITTING_GAP_S bridged."""
    merged: list[tuple[float, float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1] + SITTING_GAP_S:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def wall_time_sentence(table: pd.DataFrame, spans: list[tuple[float, float]]) -> str:
    wall = sum(end - start for start, end in spans)
    where = "from the first job's start to the last job's end"
    if len(spans) > 1:
        where = (f"the sum of {len(spans)} sittings: the folder's jobs ran in separate invocations, "
                 f"{(spans[-1][1] - spans[0][0]) / 3600:.1f} h from the first job's start to the last job's end")
    return f"Wall time {wall / 60:.1f} min ({wall:.0f} s, {where}, {table.jobs.sum()} jobs)."


def stage_table_markdown(table: pd.DataFrame, memory: bool = True) -> str:
    """Memory only where each job ran in its own interpreter: under prefalign.forkserver
    Snakemake measures the script that waits for the job."""
    rss = (lambda v: f" {v:.0f} |") if memory else (lambda v: "")
    lines = ["| stage | jobs | job seconds (sum) |" + (" peak RSS MB |" if memory else ""),
             "|---|---|---|" + ("---|" if memory else "")]
    lines += [f"| {r.stage} | {r.jobs} | {r.seconds:.0f} |" + rss(r.max_rss_mb) for r in table.itertuples()]
    lines.append(f"| **sum** | {table.jobs.sum()} | {table.seconds.sum():.0f} |" + rss(table.max_rss_mb.max()))
    return "\n".join(lines)


def competence_markdown(csv: Path) -> str:
    df = pd.read_csv(csv)
    acc = df.pivot_table(index="family", columns="view", values="accuracy", sort=False) * 100
    n = df[df.view == df.view.iloc[0]].set_index("family")["n"]
    views = list(dict.fromkeys(df.view))
    lines = ["| family | n | " + " | ".join(views) + " |", "|---|---|" + "---|" * len(views)]
    for family in acc.index:
        lines.append(f"| {family} | {n[family]} | " + " | ".join(f"{acc.loc[family, v]:.1f}" for v in views) + " |")
    exist = df[df.family == "exist"]
    if "false_yes" in exist:
        lines.append("\nFalse \"yes\" on POPE per view (of them naming an absent usual partner): "
                     + ", ".join(f"{r.view} {int(r.false_yes)} ({int(r.false_yes_on_partner)})"
                                 for r in exist.itertuples()))
    return "\n".join(lines)


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _shift_headings(markdown: str) -> str:
    """A table file's own '# Title' becomes a '###' under this document's sections."""
    return "\n".join("##" + line if line.startswith("#") else line for line in markdown.strip().splitlines())


def base_study_section(results: Path) -> list[str]:
    """`make base-study`'s report, where one of its base models is this run's (else it says
    the report is stale): the spread over base models beside this run's paired intervals."""
    study, spread = results / "base_study.md", results / "base_study_competence.csv"
    if not study.exists():
        return []
    head = ["", "## Over base models", ""]
    mine = pd.read_csv(results / "base_model" / "competence.csv").assign(
        accuracy=lambda d: (100 * d.accuracy).round(2)).set_index(["family", "view"]).accuracy
    seeds = pd.read_csv(spread).set_index(["family", "view"]).filter(like="seed ") if spread.exists() else None
    if seeds is None or not any(seeds[c].reindex(mine.index).round(2).equals(mine) for c in seeds):
        return head + ["`base_study.md` was made with base models none of which is this run's: "
                       "rerun `make base-study`."]
    return head + ["The differences above are paired over items with one base model; how much "
                   "they move over independently trained base models (`base_study.md`, "
                   "`make base-study`):", "", _shift_headings(study.read_text())]


def results_document(results: Path, command: str, commit: str | None = None) -> str:
    """`commit`: the code the run was made with, where not this checkout's."""
    results = Path(results)
    dirty = ""
    if commit is None:
        commit = _git("rev-parse", "--short", "HEAD") or "unknown"
        dirty = " (with uncommitted changes)" if _git("status", "--porcelain", "--untracked-files=no") else ""
    table, spans = stage_times(results)
    parts = [
        "# Results of a run on the miniature",
        "",
        f"Generated by `python -m prefalign.results_doc` from `{results}` on "
        f"{datetime.date.today().isoformat()}. The run: `{command}`, at commit {commit}{dirty}, on "
        f"{os.cpu_count()} cores of {_cpu()}. Do not edit: regenerate it.",
        "",
        "## Time",
        "",
        wall_time_sentence(table, spans) + " Per stage, from Snakemake's benchmark files (peak memory "
        "per stage: `python benchmarks/stage_times.py --run --no-forkserver`):",
        "",
        stage_table_markdown(table, memory=False),
    ]
    competence = results / "base_model" / "competence.csv"
    if competence.exists():
        parts += ["", "## The base model", "",
                  "Accuracy (%) per question family on the evaluation sets, clean and under noise "
                  "(`base_model/competence.csv`):", "", competence_markdown(competence)]
    tables = results / "tables"
    for name, title in TABLES:
        path = tables / f"{name}.md"
        if path.exists():
            parts += ["", f"## {title}", "", f"(`tables/{name}.md`)", "", _shift_headings(path.read_text())]
    parts += base_study_section(results)
    # the paper tables (config `paper_tables:`), by their names' pattern
    for path in sorted(p for p in tables.glob("*.md") if PAPER_TABLE.fullmatch(p.stem)):
        parts += ["", f"## Paper table `{path.stem}`", "", _shift_headings(path.read_text())]
    return "\n".join(parts) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--results", type=Path, help="the results folder (default: results)")
    where.add_argument("--configfile", type=Path, help="or the config whose `results:` it is (`extends:` followed)")
    ap.add_argument("--out", type=Path, help="default: <results>/results.md")
    ap.add_argument("--command", default="make reproduce", help="the command that made the run")
    ap.add_argument("--commit", help="the commit the run was made at (default: this checkout's HEAD)")
    a = ap.parse_args(argv)
    if a.configfile:
        from .config import load_config

        a.results = Path(load_config(a.configfile)["results"])
    a.results = a.results or Path("results")
    out = a.out or a.results / "results.md"
    with atomic_path(out) as tmp:
        tmp.write_text(results_document(a.results, a.command, a.commit))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
