"""Every shipped paper config validates and `snakemake -n` plans its whole DAG, against
placeholder model folders and data files that this test creates (no weights here)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from prefalign.config import ConfigError, load_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(c for c in (ROOT / "configs").glob("*.yaml") if not c.stem.startswith("miniature_"))


def placeholders(tmp_path) -> dict:
    models, data = tmp_path / "models", tmp_path / "data"
    for name in ("llava-1.5-7b-hf", "llava-onevision-qwen2-0.5b-ov-hf", "llava-onevision-qwen2-7b-ov-hf",
                 "Qwen2.5-VL-7B-Instruct", "Qwen2.5-VL-32B-Instruct"):
        (models / name).mkdir(parents=True)
        (models / name / "config.json").write_text("{}")
    (models / "open_clip_vit_l14_openai.pt").write_bytes(b"")
    data.mkdir()
    for name in ("llava_v1_5_mix665k.json", "POVID_preference_data_for_VLLMs.json", "llava_instruct_150k.json"):
        (data / name).write_text("[]")
    (data / "RLAIF-V-Dataset").mkdir()
    return {"PREFALIGN_MODELS": str(models), "PREFALIGN_DATA": str(data)}


def test_there_is_a_config_per_reproduction():
    assert {c.stem for c in CONFIGS} >= {"seva_llava15_7b", "smpro_ov_0.5b", "smpro_ov_7b", "aspo_llava15_7b",
                                         "consr_ov_7b", "consr_qwen2_5_vl_7b"}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.stem)
def test_paper_config_plans_the_whole_dag(config, tmp_path):
    env = {**os.environ, **placeholders(tmp_path), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(config),
                          "--config", f"results={tmp_path / 'results'}"],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    cfg = yaml.safe_load(config.read_text())
    for rule in ("sample_prompts", "build_preferences", "train", "evaluate", "evaluate_task", "tables"):
        assert f"\n{rule} " in out.stdout, rule
    # a generation with shards is joined by join_response_shards, any other one is sample_responses
    assert "\nsample_responses " in out.stdout or "\njoin_response_shards " in out.stdout
    assert "make_world" not in out.stdout and "train_base_model" not in out.stdout
    if any(p["method"] == "consr" for p in cfg["preference_sets"].values()):
        assert "\ndescribe_images " in out.stdout and "\nrevise_responses " in out.stdout
    assert out.stdout.count("rule train:") + out.stdout.count("\ntrain ") >= 1
    assert cfg["base_model"]["kind"] == "pretrained"
    for tcfg in cfg["training"].values():  # a train job asks for one GPU per training process
        if tcfg.get("processes", 1) > 1:
            assert f"gpu={tcfg['processes']}," in out.stdout


TABLES = [(c, name) for c in CONFIGS for name in yaml.safe_load(c.read_text())["paper_tables"]]


@pytest.mark.parametrize("config,name", TABLES, ids=[f"{c.stem}-{n}" for c, n in TABLES])
def test_a_paper_table_target_plans_exactly_its_runs(config, name, tmp_path, monkeypatch):
    """Each real config declares its paper's tables; each, asked for alone, plans the training
    and evaluation of its runs and of no other."""
    for key, value in placeholders(tmp_path).items():
        monkeypatch.setenv(key, value)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    table = load_config(config)["paper_tables"][name]
    target = tmp_path / "results" / "tables" / f"{name}.md"
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", str(target), "--configfile", str(config),
                          "--config", f"results={tmp_path / 'results'}"], cwd=ROOT, env=env, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    trained = set(re.findall(r"seed\d+/train/([\w.-]+)/adapter", out.stdout))
    assert trained == set(table["runs"]), (name, trained)
    rule = "paper_figure" if "_figure" in name else "paper_table"
    assert "\ntables " not in out.stdout and f"\n{rule} " in out.stdout


def test_table8_descriptions_come_from_the_larger_model(tmp_path, monkeypatch):
    """ConSR Table 8's 32B row: its descriptions are written by `description_model`, every other
    ConSR set's by the base model (which revises and scores for all of them)."""
    for key, value in placeholders(tmp_path).items():
        monkeypatch.setenv(key, value)
    target = tmp_path / "results" / "tables" / "consr_table8.md"
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", str(target), "--configfile",
                          "configs/consr_qwen2_5_vl_7b.yaml", "--config", f"results={tmp_path / 'results'}"], cwd=ROOT,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:]
    jobs = [j for j in out.stdout.split("\n\n") if "rule describe_images:" in j]
    model = {re.search(r"cp=(\w+)", j).group(1): re.search(r"input: .*?models/([\w.-]+)", j).group(1) for j in jobs}
    base = "Qwen2.5-VL-7B-Instruct"
    assert model == {"paper": base, "enhanced_qa": base, "desc_32b": "Qwen2.5-VL-32B-Instruct"}, model


def test_the_miniature_ablations_extend_the_default(tmp_path):
    """configs/miniature_ablations.yaml is config.yaml plus the papers' ablations: every default
    run, set and setting unchanged but for seeds a run may add (the DPO rows' second seed), one
    target per paper table, planned into the same results."""
    default, ablations = load_config(ROOT / "config.yaml"), load_config(ROOT / "configs/miniature_ablations.yaml")
    for run, entry in default["runs"].items():
        extended = dict(ablations["runs"][run])
        seeds = extended.pop("seeds", ablations["seeds"])
        assert set(entry.get("seeds", default["seeds"])) <= set(seeds), run
        assert extended == {k: v for k, v in entry.items() if k != "seeds"}, run
    for key, value in default.items():
        if isinstance(value, dict) and key != "runs":
            assert {k: ablations[key][k] for k in value} == value, key
        elif key != "runs":
            assert ablations[key] == value, key
    assert len(ablations["runs"]) > len(default["runs"]) and not default["paper_tables"]
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", "configs/miniature_ablations.yaml",
                          "--config", f"results={tmp_path / 'results'}"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for name in ablations["paper_tables"]:
        assert f"tables/{name}.md" in out.stdout, name


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.stem)
def test_tables_list_needs_no_path_variables(config):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFALIGN_")}
    out = subprocess.run([sys.executable, "-m", "prefalign.paper_tables", str(config)], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert all(f"/tables/{name}.md" in out.stdout for name in yaml.safe_load(config.read_text())["paper_tables"])


def test_a_reported_section_and_its_rows_must_exist(tmp_path, monkeypatch):
    for key, value in placeholders(tmp_path).items():
        monkeypatch.setenv(key, value)
    cfg = yaml.safe_load((ROOT / "configs" / "seva_llava15_7b.yaml").read_text())
    cfg["paper_tables"]["seva_table6"]["reported"]["paper"] = "seva_table99"
    with pytest.raises(ConfigError, match="paper_tables.seva_table6.reported.paper.*seva_table99"):
        validate_config(cfg)
    cfg["paper_tables"]["seva_table6"]["reported"] = {"paper": "seva_table6", "rows": {"seva_r64": "r=65"}}
    with pytest.raises(ConfigError, match="rows.seva_r64.*'r=65' is not a reported row"):
        validate_config(cfg)
    cfg["paper_tables"]["seva_table6"]["reported"] = {"paper": "seva_table6", "rows": {"t1_moco": "r=64"}}
    with pytest.raises(ConfigError, match="rows.t1_moco.*not 'base' nor one of its runs"):
        validate_config(cfg)


def test_unset_path_variable_names_the_key(monkeypatch):
    monkeypatch.delenv("PREFALIGN_MODELS", raising=False)
    monkeypatch.setenv("PREFALIGN_DATA", "/data")
    with pytest.raises(ConfigError, match="'base_model.path'"):
        load_config(ROOT / "configs" / "seva_llava15_7b.yaml")


def test_the_slurm_profile_caps_its_scaling_signals_training_and_retries_only_model_stages(tmp_path):
    """What `make slurm-profile` installs: every resource that scales with the attempt stays at
    or under its cap (evaluated as Snakemake does, attempt 1 to 10); both training stages get
    SIGTERM before their limit (they checkpoint on it); preempted jobs requeue; CPU stages go to
    the CPU partition; the deterministic CPU rules do not retry."""
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path)}
    make = subprocess.run(["make", "-s", "slurm-profile", "SLURM_PARTITION=gpu", "SLURM_CPU_PARTITION=cpu",
                           "SLURM_MEM_MB=64000", "SLURM_MAX_MEM_MB=100000", "SLURM_MAX_RUNTIME_MIN=1000",
                           "SLURM_SIGNAL_S=300"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert make.returncode == 0, make.stderr
    text = (tmp_path / "snakemake" / "slurm" / "config.v9+.yaml").read_text()
    assert "@" not in text.replace("TERM@300", "").split("fields below.)")[1]  # every field filled in
    profile = yaml.safe_load(text)
    assert profile["slurm-requeue"] is True and profile["retries"] == 2
    rules = {"<default>": profile["default-resources"], **profile["set-resources"]}
    assert rules["<default>"]["slurm_partition"] == "cpu" and rules["train"]["slurm_partition"] == "gpu"
    for rule, resources in rules.items():
        for attempt in range(1, 11):
            mem, runtime = (eval(str(resources.get(k, "0")), {}, {"attempt": attempt}) for k in ("mem_mb", "runtime"))
            assert mem <= 100000 and runtime <= 1000, (rule, attempt)
        assert ("slurm_extra" in resources) == (rule in ("train", "train_base_model")), rule
    assert rules["train"]["slurm_extra"] == "'--signal=TERM@300'"
    blocks = {m.group(1): m.group(0) for f in (ROOT / "rules").glob("*.smk")
              for m in re.finditer(r"^rule (\w+):\n(?:[ \t]+.*\n?)*", f.read_text(), re.M)}
    for rule in ("make_world", "sample_prompts", "join_response_shards", "tables", "report_pages"):
        assert "\n    retries: 0" in blocks[rule], rule
