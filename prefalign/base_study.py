"""The base-model study (config key `base_seeds`): the same workflow over independently trained
base models, and how much each competence figure and each run's difference vs base moves.

On the miniature the base model is trained by the workflow, and its figures depend on the
seed (and on the machine's floating-point order), so a method's delta vs base is measured
over several bases. Each seed B trains its own base model (`base_model.sft.seed` and, where
the vision tower starts from a world CLIP, that CLIP's seed) on the same world; the seed the
config itself names is its own results folder, every other one `{results}/base_seeds/seed{B}`,
run from a config that `extends:` the given one.

    python -m prefalign.base_study configs CONFIG   # each base seed's config file, one a line
    python -m prefalign.base_study report CONFIG    # {results}/base_study.md and .csv

`make base-study` runs `make reproduce` on each of those configs, then the report.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import yaml

from .config import ConfigError, load_config
from .deltas import HEADLINE
from .io import atomic_path

# The differences whose spread the report gives: each benchmark's headline and POPE's adversarial split.
REPORTED_METRICS = [*HEADLINE.values(), "pope_accuracy_adversarial"]


def seed_overrides(cfg: dict, seed: int) -> dict:
    """What a base seed changes in the config: the SFT seed, and the vision tower's CLIP's seed."""
    out = {"base_model": {"sft": {"seed": seed}}}
    clip = (cfg["base_model"].get("tiny") or {}).get("vision_from")
    if clip:
        out["clip_models"] = {clip: {"seed": seed}}
    return out


def own_seed(cfg: dict) -> int:
    return cfg["base_model"]["sft"]["seed"]


def seed_results(cfg: dict, seed: int) -> Path:
    return Path(cfg["results"]) if seed == own_seed(cfg) else Path(cfg["results"]) / "base_seeds" / f"seed{seed}"


def study_seeds(cfg: dict, config_path: Path) -> list[int]:
    """The config's `base_seeds`, where a study can use them."""
    if not cfg.get("base_seeds"):
        raise ConfigError(f"config key 'base_seeds': {config_path} names no base seeds for the study")
    if cfg["base_model"]["kind"] != "tiny_llava":
        raise ConfigError("config key 'base_seeds': only a base model the workflow trains (tiny_llava) has seeds")
    return cfg["base_seeds"]


def study_configs(config_path) -> list[tuple[int, Path]]:
    """(seed, config file) for each of `base_seeds`; writes the other seeds' configs."""
    config_path = Path(config_path).resolve()
    cfg = load_config(config_path)
    out = []
    for seed in study_seeds(cfg, config_path):
        if seed == own_seed(cfg):
            out.append((seed, config_path))
            continue
        folder = seed_results(cfg, seed)
        folder.mkdir(parents=True, exist_ok=True)
        own = {"extends": str(config_path), "results": str(folder.resolve()), **seed_overrides(cfg, seed)}
        with atomic_path(folder / "config.yaml") as tmp:
            tmp.write_text(yaml.safe_dump(own, sort_keys=False))
        out.append((seed, folder / "config.yaml"))
    return out


def spread(frame: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
    """One row per `keys`: each seed's value, their mean, standard deviation and range."""
    wide = frame.pivot_table(index=keys, columns="base_seed", values=value, aggfunc="first")
    wide.columns = [f"seed {c}" for c in wide.columns]
    seeds = wide.columns.tolist()
    wide["mean"], wide["sd"] = wide[seeds].mean(axis=1), wide[seeds].std(axis=1, ddof=1)
    wide["range"] = wide[seeds].max(axis=1) - wide[seeds].min(axis=1)
    return wide.round(2).reset_index()


def report(config_path) -> Path:
    """`{results}/base_study.md` (+ competence and delta spreads as csv) from the finished runs."""
    config_path = Path(config_path).resolve()
    cfg = load_config(config_path)
    competence, deltas = [], []
    for seed in study_seeds(cfg, config_path):
        folder = seed_results(cfg, seed)
        for name, rows in (("base_model/competence.csv", competence), ("tables/deltas.csv", deltas)):
            if not (folder / name).exists():
                raise FileNotFoundError(f"{folder / name}: base seed {seed} has not finished (make base-study)")
            rows.append(pd.read_csv(folder / name).assign(base_seed=seed))
    comp = pd.concat(competence).assign(accuracy=lambda d: 100 * d.accuracy)
    comp_spread = spread(comp, ["family", "view"], "accuracy")
    delta = pd.concat(deltas)
    delta = delta[delta.metric.isin(REPORTED_METRICS)]
    delta_spread = spread(delta, ["run", "benchmark", "metric"], "delta")
    out = Path(cfg["results"])
    for name, frame in (("base_study_competence.csv", comp_spread), ("base_study_deltas.csv", delta_spread)):
        with atomic_path(out / name) as tmp:
            frame.to_csv(tmp, index=False)
    text = (f"# The base-model study: {len(cfg['base_seeds'])} independently trained base models\n\n"
            f"Base seeds {cfg['base_seeds']} (the SFT seed and its vision tower's CLIP seed), the same world and "
            "settings otherwise. Written by `python -m prefalign.base_study report`; sd is over base models.\n\n"
            "## Accuracy of each base model (%), per question family and view\n\n"
            f"{comp_spread.to_markdown(index=False)}\n\n"
            "## Each run's difference vs its own base model (points)\n\n"
            f"{delta_spread.to_markdown(index=False)}\n")
    with atomic_path(out / "base_study.md") as tmp:
        tmp.write_text(text)
    return out / "base_study.md"


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("configs", "report"):
        sys.exit(__doc__)
    if sys.argv[1] == "configs":
        print("\n".join(str(path) for _, path in study_configs(sys.argv[2])))
    else:
        print(report(sys.argv[2]))
