"""The results document is generated from a run's files: its stage table sums the benchmark
files, and it holds the base model's competence and every table the run wrote."""
from pathlib import Path

import pandas as pd
import yaml

from prefalign import results_doc

ROOT = Path(__file__).resolve().parents[1]


def test_the_results_document_of_the_micro_run_holds_its_times_competence_and_tables(micro_run, tmp_path):
    results, _, out = micro_run
    assert out.returncode == 0, out.stderr[-3000:]
    out_file = tmp_path / "results.md"
    results_doc.main(["--results", str(results), "--out", str(out_file), "--command", "the micro run"])
    text = out_file.read_text()
    table, spans = results_doc.stage_times(results)
    benchmark_files = sorted((results / "benchmarks").glob("*.tsv"))
    assert table.jobs.sum() == len(benchmark_files)
    assert round(table.seconds.sum()) == round(sum(pd.read_csv(f, sep="\t")["s"].iloc[0] for f in benchmark_files))
    assert len(spans) == 1 and 0 < spans[0][1] - spans[0][0] <= table.seconds.sum() + 60  # one sitting
    assert results_doc.wall_time_sentence(table, spans) in text
    assert f"| **sum** | {len(benchmark_files)} |" in text and "the micro run" in text
    competence = pd.read_csv(results / "base_model" / "competence.csv")
    for family in set(competence.family):
        assert f"| {family} |" in text
    for name in ("main", "deltas", "oracle_fraction", "preference_counts"):
        lines = (results / "tables" / f"{name}.md").read_text().splitlines()
        first_row = lines[next(i for i, line in enumerate(lines) if line.startswith("|---")) + 1]
        assert first_row in text  # the table itself, as the tables rule wrote it
    # `make reproduce` names the config, not the folder: its `results:`, through `extends:`
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({**yaml.safe_load((ROOT / "tests/configs/micro.yaml").read_text()),
                                    "results": str(results)}))
    child = tmp_path / "child.yaml"
    child.write_text(f"extends: {base}\n")
    via_config = tmp_path / "via_config.md"
    results_doc.main(["--configfile", str(child), "--out", str(via_config), "--command", "the micro run"])
    assert via_config.read_text() == text


def test_the_wall_time_counts_the_sittings_in_which_jobs_ran_not_the_days_between_them():
    # a world and CLIP built in the morning, the rest of the run after lunch: two sittings
    jobs = [(0, 10), (10.5, 130), (4 * 3600, 4 * 3600 + 900), (4 * 3600 + 100, 4 * 3600 + 1000),
            (4 * 3600 + 1030, 4 * 3600 + 1100)]
    spans = results_doc.sittings(jobs)
    assert spans == [(0, 130), (4 * 3600, 4 * 3600 + 1100)]
    table = pd.DataFrame({"stage": ["a"], "jobs": [5], "seconds": [0.0]})
    sentence = results_doc.wall_time_sentence(table, spans)
    assert sentence.startswith("Wall time 20.5 min (1230 s, the sum of 2 sittings") and "4.3 h" in sentence
    assert "sittings" not in results_doc.wall_time_sentence(table, spans[1:])


def test_the_base_study_joins_the_document_only_when_one_of_its_bases_is_the_runs(tmp_path):
    (tmp_path / "base_model").mkdir()
    competence = pd.DataFrame({"family": ["exist", "colour"], "view": ["clean", "clean"], "accuracy": [0.826, 0.62]})
    competence.to_csv(tmp_path / "base_model" / "competence.csv", index=False)
    assert results_doc.base_study_section(tmp_path) == []  # no study: no section
    (tmp_path / "base_study.md").write_text("# The base-model study\n\n| run | sd |\n|---|---|\n| oracle | 0.7 |\n")
    spread = pd.DataFrame({"family": ["colour", "exist"], "view": ["clean", "clean"], "seed 0": [62.0, 82.6],
                           "seed 1": [60.0, 84.0], "mean": [61.0, 83.3], "sd": [1.4, 1.0], "range": [2.0, 1.4]})
    spread.to_csv(tmp_path / "base_study_competence.csv", index=False)
    text = "\n".join(results_doc.base_study_section(tmp_path))
    assert "### The base-model study" in text and "| oracle | 0.7 |" in text
    spread.assign(**{"seed 0": [62.0, 82.5]}).to_csv(tmp_path / "base_study_competence.csv", index=False)
    text = "\n".join(results_doc.base_study_section(tmp_path))
    assert "rerun `make base-study`" in text and "| oracle |" not in text
