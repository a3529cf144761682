"""The base-model study: one config per base seed, and the spread of what the finished runs wrote."""
from pathlib import Path

import pandas as pd
import pytest
import yaml

from prefalign import base_study
from prefalign.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]


def study_config(tmp_path, **changes) -> Path:
    cfg = yaml.safe_load((ROOT / "tests/configs/micro.yaml").read_text())
    cfg["results"] = str(tmp_path / "results")
    cfg["base_model"]["tiny"].pop("vision")
    cfg["base_model"]["tiny"]["vision_from"] = "world"
    cfg.update(changes)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_each_base_seed_gets_its_own_base_model_and_folder(tmp_path):
    path = study_config(tmp_path, base_seeds=[0, 5])
    (own, own_path), (other, other_path) = base_study.study_configs(path)
    assert (own, own_path) == (0, path.resolve())  # the config's own seed is its own run
    cfg = load_config(other_path)
    assert other == 5 and cfg["results"] == str((tmp_path / "results/base_seeds/seed5").resolve())
    assert cfg["base_model"]["sft"]["seed"] == 5 and cfg["clip_models"]["world"]["seed"] == 5
    mine = load_config(path)
    for key in ("world", "runs", "training", "preference_sets"):  # nothing else differs
        assert cfg[key] == mine[key]
    assert {**cfg["base_model"]["sft"], "seed": 0} == mine["base_model"]["sft"]


def test_a_config_without_base_seeds_is_named(tmp_path):
    with pytest.raises(ConfigError, match="'base_seeds'"):
        base_study.study_configs(study_config(tmp_path))


def test_report_gives_each_seed_and_the_spread(tmp_path):
    path = study_config(tmp_path, base_seeds=[0, 5, 7])
    base_study.study_configs(path)
    results = tmp_path / "results"
    for seed, acc, delta in [(0, 0.80, 1.0), (5, 0.90, 3.0), (7, 0.85, 2.0)]:
        folder = results if seed == 0 else results / f"base_seeds/seed{seed}"
        (folder / "base_model").mkdir(parents=True, exist_ok=True)
        (folder / "tables").mkdir(parents=True, exist_ok=True)
        pd.DataFrame([{"family": "exist", "view": "clean", "n": 10, "accuracy": acc}]).to_csv(
            folder / "base_model/competence.csv", index=False)
        pd.DataFrame([{"run": "oracle", "benchmark": "prefalign_pope", "metric": m, "delta": delta + k,
                       "ci_low": 0, "ci_high": 0, "n_items": 10, "n_seeds": 1}
                      for k, m in enumerate(["pope_accuracy", "pope_f1"])]).to_csv(
            folder / "tables/deltas.csv", index=False)
    md = base_study.report(path).read_text()
    comp = pd.read_csv(results / "base_study_competence.csv")
    assert comp.iloc[0][["seed 0", "seed 5", "seed 7", "mean", "sd", "range"]].tolist() == [80, 90, 85, 85, 5, 10]
    deltas = pd.read_csv(results / "base_study_deltas.csv")
    assert deltas.metric.tolist() == ["pope_accuracy"]  # F1 is no reported metric
    assert deltas.iloc[0][["mean", "sd", "range"]].tolist() == [2, 1, 2]
    assert "| oracle" in md and "seed 7" in md


def test_report_names_a_base_seed_that_has_not_finished(tmp_path):
    path = study_config(tmp_path, base_seeds=[0, 5])
    with pytest.raises(FileNotFoundError, match="base seed 0"):
        base_study.report(path)


def test_report_names_a_config_without_base_seeds(tmp_path):
    with pytest.raises(ConfigError, match="'base_seeds'"):
        base_study.report(study_config(tmp_path))
