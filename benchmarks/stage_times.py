"""Per-stage wall time and peak memory of a workflow run, from Snakemake's benchmark files.

    python benchmarks/stage_times.py --run --configfile config.yaml --results results/bench
runs the whole DAG into a fresh results folder, as `make reproduce` does (jobs in forks of
prefalign.forkserver), and prints one row per stage; without --run it only reads the benchmark
files an earlier run left in <results>/benchmarks/. Under the fork server Snakemake measures the
waiting script, not the job: for the jobs' peak memory, run with --no-forkserver."""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from prefalign.results_doc import stage_table_markdown, stage_times, wall_time_sentence


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--configfile", default="config.yaml")
    ap.add_argument("--results", default="results")
    ap.add_argument("--run", action="store_true", help="run the workflow first (into --results)")
    ap.add_argument("--cores", default="2")
    ap.add_argument("--no-forkserver", action="store_true", help="each job in its own interpreter")
    a = ap.parse_args()
    results = Path(a.results)
    wall = None
    if a.run:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
        t0 = time.time()
        server = [] if a.no_forkserver else [sys.executable, "-m", "prefalign.forkserver", "--"]
        subprocess.run([*server, sys.executable, "-m", "snakemake", "--cores", a.cores, "--configfile", a.configfile,
                        "--config", f"results={results}"], check=True, env=env)
        wall = time.time() - t0
    try:
        table, spans = stage_times(results)
    except FileNotFoundError as e:
        sys.exit(f"{e} (or pass --run)")
    print(stage_table_markdown(table, memory=a.no_forkserver or not a.run))
    print("\n" + wall_time_sentence(table, spans))
    if wall is not None:
        print(f"\nend-to-end wall time of the snakemake run: {wall:.0f} s")


if __name__ == "__main__":
    main()
