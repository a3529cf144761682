"""End to end: the whole DAG on the micro config through snakemake, in a temp dir."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def run(args, cwd, env=None, **kw):
    env = env or {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run(SNAKEMAKE + args, cwd=cwd, env=env, capture_output=True, text=True, **kw)


def controls_separate(results: Path, adapters: dict) -> bool:
    """The controls' directional check, on evaluation items the base model answers wrongly:
    training on ground-truth pairs raises the held-out margin log p(true) - log p(base's answer)
    above the base model's, and the same pairs reversed lower it below (prefalign/margins.py)."""
    from prefalign.margins import base_errors, heldout_margin

    items = base_errors(results / "world", results / "eval/base")
    assert len(items) > 20
    margins = {name: heldout_margin(results / "base_model/model", a, items)
               for name, a in {"base": None, **adapters}.items()}
    print(f"held-out margins (nats) over {len(items)} items: {margins}")
    return margins["oracle"] > margins["base"] + 0.02 and margins["oracle_reversed"] < margins["base"] - 0.02


def test_lint_is_clean():
    out = run(["--lint", "--configfile", "tests/configs/micro.yaml"], ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Lints for" not in out.stdout + out.stderr, out.stdout + out.stderr
    fmt = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "Snakefile", "rules/"], cwd=ROOT,
                         capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_stage_rules_exist_for_until_and_forcerun():
    out = run(["--list-rules", "--configfile", "tests/configs/micro.yaml"], ROOT)
    rules = set(out.stdout.split())
    assert {"sample_prompts", "augment", "sample_responses", "build_preferences", "train",
            "evaluate", "tables", "make_world", "train_base_model"} <= rules


@pytest.mark.slow
def test_micro_dag_end_to_end(micro_run):
    results, args, out = micro_run
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    for rel in ["world/sft.json", "world/pool.json", "world/pool_answers.json", "world/eval/pope.parquet",
                "base_model/model/config.json", "base_model/sft_log.csv", "base_model/competence.csv",
                "seed1/prompts/seva.jsonl", "seed1/augment/seva.noise800.jsonl", "seed1/augment/seva.noise800.png",
                "seed1/responses/seva.clean.greedy.jsonl", "seed1/responses/seva.noise800.greedy.jsonl",
                "seed1/preferences/seva.jsonl", "seed1/preferences/seva.stats.json",
                "seed1/train/seva/adapter/adapter_config.json", "seed1/train/seva/log.csv",
                "seed1/train/seva/curves.png", "eval/base/results.json", "eval/seva.seed1/samples.jsonl",
                "tables/main.md", "tables/main.png", "tables/label_accuracy.md", "tables/deltas.md",
                "tables/label_accuracy_vs_gain.png", "seed1/preferences/seva.reference.safetensors",
                "seed1/responses/smpro.noise800.sample2.jsonl", "seed1/preferences/smpro.jsonl",
                "seed1/train/smpro/adapter/adapter_config.json", "eval/smpro.seed1/samples.jsonl",
                "tables/study_seva_aspo.md", "tables/aspo_figure3.png", "tables/aspo_figure3.training.png",
                "tables/label_accuracy_by_group.md",
                "tables/diversity.md",
                "clip/world/model/model.pt", "clip/world/log.csv", "seed1/preferences/aspo.jsonl",
                "eval/aspo.seed1/samples.jsonl", "seed1/descriptions/consr.world.jsonl",
                "seed1/revisions/consr.world.sample2.jsonl", "seed1/preferences/consr.jsonl",
                "eval/consr.seed1/samples.jsonl", "tables/response_length.md"]:
        assert (results / rel).exists(), rel
    main = pd.read_csv(results / "tables" / "main.csv")
    # the controls first, then by preference set; not ablation-only runs
    assert list(main.model) == ["base", "control: oracle", "control: reversed", "ConSR",
                                "SeVa (DPO on SeVa pairs)", "SMPRO"]
    consr = [json.loads(x) for x in (results / "seed1/preferences/consr.jsonl").read_text().splitlines()]
    ranked = [g[0] for g in consr[0]["groups"]]
    assert len(ranked) == 6 and sorted(c["source"] for c in ranked) == ["noisy"] * 2 + ["revised"] * 2 + ["sampled"] * 2
    assert all(len(c["token_prob_shift"]) == len(ranked[0]["token_prob_shift"]) or c["text"] != ranked[0]["text"]
               for c in ranked)
    aspo = [json.loads(x) for x in (results / "seed1/preferences/aspo.jsonl").read_text().splitlines()]
    units = aspo[0]["groups"][0][0]["units"]
    assert len(units["texts"]) == len(units["similarity"]) == len(units["perplexity"]) >= 1
    paper_table = pd.read_csv(results / "tables" / "study_seva_aspo.csv")
    assert list(paper_table.model) == ["base", "SeVa (DPO on SeVa pairs)", "ASPO"]
    by_group = pd.read_csv(results / "tables" / "label_accuracy_by_group.csv")
    smpro = by_group[by_group["preference set"] == "smpro"]
    assert list(smpro.groups) == ["G1 > G2", "G1 > G3", "G2 > G3"]
    assert list(smpro.pairs) == [12 * 2 * 1, 12 * 2 * 2, 12 * 1 * 2]
    diversity = pd.read_csv(results / "tables" / "diversity.csv")
    assert list(diversity.responses) == ["reasoning prompt", "ConSR prompts"]
    assert diversity["MATTR-50"].between(0, 1).all()
    for col in ["POPE acc", "POPE acc adversarial", "POPE F1", "VQA EM", "CHAIR_i (lower better)", "Object recall"]:
        assert main[col].between(0, 1).all() and (main[col + " low"] <= main[col]).all()
    labels = pd.read_csv(results / "tables" / "label_accuracy.csv").set_index("preference set")
    assert labels["pairs"].iloc[0] > 0
    # every prompt accounted for: kept (the records in the file) + rejected by reason
    stats = sorted(results.glob("seed*/preferences/*.stats.json"))
    for path in stats:
        counts = json.loads(path.read_text())
        records = path.with_name(path.name.replace(".stats.json", ".jsonl")).read_text().splitlines()
        assert counts["prompts"] == len(records) + sum(counts["rejected"].values()), path
    counts = pd.read_csv(results / "tables" / "preference_counts.csv")
    assert len(counts) == len(stats) and (counts.prompts == counts.kept + counts.rejected).all()
    assert counts.set_index("preference set").loc["seva", "reasons"].startswith("identical_pair ")
    # the controls: ground-truth labels, as they are and reversed; training can see them
    assert labels.loc["oracle", "label accuracy"] == 1 and labels.loc["oracle_reversed", "label accuracy"] == 0
    adapters = {run: results / f"seed1/train/{run}/adapter" for run in ("oracle", "oracle_reversed")}
    assert controls_separate(results, adapters)
    answers = {r: (results / f"eval/{r}/samples.jsonl").read_text() for r in ("base", "oracle.seed1")}
    assert answers["base"] != answers["oracle.seed1"]  # training reaches the benchmark answers
    # TRL's training metrics in log.csv, and each step of them in the Weights & Biases offline run
    log = pd.read_csv(results / "seed1/train/oracle/log.csv")
    assert {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen",
            "logps/rejected", "log_ratio_per_token/chosen"} <= set(log.columns)
    from prefalign.tracking import offline_history

    (tracked,) = (results / "seed1/train/oracle/wandb").glob("offline-run-*")
    config, history = offline_history(tracked)
    assert config["training"]["lr"] == 0.0005 and len(history) == len(log)
    assert [h["rewards/margins"] for h in history] == pytest.approx(list(log["rewards/margins"]), rel=1e-6)
    deltas = pd.read_csv(results / "tables" / "deltas.csv")
    assert set(deltas.run) == {"oracle", "oracle_reversed", "seva", "smpro", "aspo", "consr"}
    assert (deltas[deltas.metric == "pope_accuracy"].n_items == 24).all()
    assert (deltas.ci_low <= deltas.delta).all() and (deltas.delta <= deltas.ci_high).all()
    assert set(pd.read_csv(results / "tables" / "oracle_fraction.csv").run) == set(deltas.run) - {"oracle"}
    # relocatable: no record names the results folder (the world's images are "{world}/...")
    records = [p for stage in ("prompts", "responses", "descriptions", "revisions", "preferences")
               for p in results.glob(f"seed*/{stage}/*.jsonl")]
    assert len(records) > 10 and not [p for p in records if str(results) in p.read_text()]
    # nothing left to do, and rerunning one stage reruns only what depends on it
    dry = run(args + ["-n", "--forcerun", "build_preferences"], ROOT)
    assert dry.returncode == 0
    assert "train_base_model" not in dry.stdout and "build_preferences" in dry.stdout
    # one run given its own objective settings: that run's train and evaluate, and the tables
    # (its paper table's too) and the report's pages
    one_objective = micro_variant(results.parent / "one_objective.yaml", with_beta(0.2))
    assert planned(args, one_objective) == {"train": 1, "evaluate": 1, "tables": 1, "paper_table": 1,
                                              "report_pages": 1}


@pytest.mark.slow
def test_a_flipped_loss_sign_fails_the_control_check(micro_run, tmp_path, monkeypatch):
    """The controls' check is not one a broken loss passes: retrain both controls of the micro
    run with the DPO loss's sign flipped, as the train stage does, and the check fails."""
    from prefalign import methods
    from prefalign.config import load_config
    from prefalign.methods.records import Objective
    from prefalign.data import world_dir, world_folder
    from prefalign.settings import ObjectiveSettings, TrainingSettings
    from prefalign.stages.train import train

    results, _, out = micro_run
    assert out.returncode == 0
    dpo = methods.OBJECTIVES["dpo"]

    def flipped(scored, cfg):
        loss, metrics = dpo.loss(scored, cfg)
        return -loss, metrics
    monkeypatch.setitem(methods.OBJECTIVES, "dpo", Objective(select=dpo.select, loss=flipped))
    cfg = load_config(ROOT / "tests/configs/micro.yaml")
    adapters = {}
    for run in ("oracle", "oracle_reversed"):
        r, out_dir = cfg["runs"][run], tmp_path / run
        with world_folder(world_dir(results)):  # as the job's setup does
            train(prefs_path=results / f"seed1/preferences/{r['preferences']}.jsonl",
                  model_dir=results / "base_model/model", adapter_dir=out_dir / "adapter",
                  log_csv=out_dir / "log.csv", curves_png=out_dir / "curves.png", title=run,
                  objective=ObjectiveSettings.of(cfg["objectives"]["dpo"]),
                  training=TrainingSettings.of(cfg["training"][r["training"]]), seed=1, device="cpu",
                  dtype="float32",
                  reference_path=results / f"seed1/preferences/{r['preferences']}.reference.safetensors")
        adapters[run] = out_dir / "adapter"
    assert not controls_separate(results, adapters)


def planned(args, config: Path) -> dict:
    """{rule: count} that `snakemake -n` plans with `config` in place of the micro config."""
    swapped = [str(config) if a == str(ROOT / "tests/configs/micro.yaml") else a for a in args]
    dry = run(swapped + ["-n", "--quiet", "rules"], ROOT)
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    counts = {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", dry.stdout, re.M)}
    counts.pop("all", None), counts.pop("total", None)
    return counts


def micro_variant(path: Path, edit=None) -> Path:
    """The micro config with `edit` applied, written with its keys sorted."""
    import yaml

    cfg = yaml.safe_load((ROOT / "tests/configs/micro.yaml").read_text())
    if edit:
        edit(cfg)
    path.write_text(yaml.safe_dump(cfg, sort_keys=True))
    return path


def with_beta(beta):
    def edit(cfg):
        cfg["objectives"]["dpo_changed"] = {**cfg["objectives"]["dpo"], "beta": beta}
        cfg["runs"]["seva"]["objective"] = "dpo_changed"
    return edit


@pytest.mark.slow
def test_params_rerun_only_what_a_change_reaches(micro_run, tmp_path):
    """Params hold what changes a job's output, in canonical form (dry runs on the finished
    micro run): reordered keys plan nothing, a label the tables, a view the runs that use it,
    the competence's noise steps the competence and not the SFT."""
    results, args, out = micro_run
    assert out.returncode == 0
    assert planned(args, micro_variant(tmp_path / "sorted.yaml")) == {}  # keys reordered
    relabelled = micro_variant(tmp_path / "label.yaml", lambda c: c["runs"]["seva"].update(label="renamed"))
    assert planned(args, relabelled) == {"tables": 1, "paper_table": 1, "report_pages": 1}  # seva is in one
    noise = micro_variant(tmp_path / "noise.yaml", lambda c: c["augmentations"]["noise500"].update(step=400))
    dry = run([str(noise) if a.endswith("micro.yaml") else a for a in args] + ["-n"], ROOT)
    assert set(re.findall(r"seed1/train/(\w+)/adapter", dry.stdout)) == {"smpro", "consr"}
    competence = micro_variant(tmp_path / "competence.yaml",
                               lambda c: c["base_model"].update(competence_noise_steps=[500]))
    assert planned(args, competence) == {"base_competence": 1, "report_pages": 1}  # not the SFT
    checkpointing = micro_variant(tmp_path / "checkpointing.yaml",
                                  lambda c: c["training"]["miniature"].update(checkpoint_every=1, report_to="none"))
    assert planned(args, checkpointing) == {}  # how often a training checkpoints, or where else it logs


@pytest.mark.slow
@pytest.mark.extended
def test_no_stale_results_after_a_failed_training(micro_run, tmp_path):
    """A setting or a file that reruns `train` keeps evaluate and tables planned when that
    training fails (killed like the OOM killer does, or Snakemake's process group SIGTERM'd),
    until a run completes them. (make test-all: about 4 minutes.) Changes the micro run and
    restores it at the end, for test_slurm."""
    import signal
    import time

    import torch

    from prefalign.config import load_config
    from prefalign.data import world_dir, world_folder
    from prefalign.settings import ObjectiveSettings, TrainingSettings
    from prefalign.stages.train import train

    results, args, out = micro_run
    assert out.returncode == 0
    stale = {"train": 1, "evaluate": 1, "tables": 1, "report_pages": 1}  # oracle_reversed's
    seva_stale = {**stale, "paper_table": 1}  # seva is also in the micro config's paper table
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}

    def with_config(config):
        return [str(config) if a.endswith("micro.yaml") else a for a in args]

    # 1. a changed setting; Snakemake's process group SIGTERM'd while the training runs
    beta = micro_variant(tmp_path / "beta.yaml", with_beta(0.2))
    proc = subprocess.Popen(SNAKEMAKE + with_config(beta), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    for line in proc.stdout:
        if line.strip().endswith("rule train:"):
            time.sleep(1)
            os.killpg(proc.pid, signal.SIGTERM)
            break
    proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert planned(args, beta) == seva_stale
    # 2. the setting changed again (the same run); the training killed (SIGKILL, as the OOM killer does)
    beta = micro_variant(tmp_path / "beta3.yaml", with_beta(0.3))
    killed = run(with_config(beta), ROOT, env={**env, "PREFALIGN_FAULT_AT_STEP": "0"})
    assert killed.returncode != 0 and "Error in rule train" in killed.stdout + killed.stderr
    assert planned(args, beta) == seva_stale
    assert run(with_config(beta), ROOT).returncode == 0
    # 3. a changed preference file: first broken (the job that reads it fails, and its log holds
    # the traceback), then valid, and its training is killed
    prefs = results / "seed1/preferences/oracle_reversed.jsonl"
    original = prefs.read_text()
    kept = "".join(original.splitlines(keepends=True)[:-1])
    prefs.write_text(kept + '{"id": "broken", \n')
    failed = run(with_config(beta), ROOT)
    assert failed.returncode != 0 and "Error in rule reference_logps" in failed.stdout + failed.stderr
    log = (results / "logs/reference_logps.oracle_reversed.seed1.log").read_text()
    assert "Traceback" in log and re.search(r"RecordError: .*oracle_reversed.jsonl: record line \d+", log), log
    assert "Traceback" not in failed.stdout + failed.stderr  # the console keeps Snakemake's own report
    assert planned(args, beta) == {"reference_logps": 1, **stale}
    prefs.write_text(kept)
    killed = run(with_config(beta), ROOT, env={**env, "PREFALIGN_FAULT_AT_STEP": "0"})
    assert killed.returncode != 0 and "Error in rule train" in killed.stdout + killed.stderr
    assert planned(args, beta) == stale
    # 4. a real kill -9 of Snakemake and its job mid-training, after the checkpoint at step 2
    # (the job stops itself there, so the kill comes at a known step): Snakemake's lock
    # stays; `make reproduce` recovers, resumes the training and ends as an uninterrupted run
    def checkpointed(c):
        with_beta(0.3)(c)
        c["training"]["miniature"]["checkpoint_every"] = 1
    often = micro_variant(tmp_path / "beta3_checkpointed.yaml", checkpointed)
    assert planned(args, often) == stale  # how often a training checkpoints reruns nothing
    train_log = results / "logs/train.oracle_reversed.seed1.log"
    proc = subprocess.Popen(SNAKEMAKE + with_config(often), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**env, "PREFALIGN_FAULT_AT_STEP": "2", "PREFALIGN_FAULT_SIGNAL": "STOP"})
    deadline = time.time() + 300
    while not (train_log.exists() and "PREFALIGN_FAULT_AT_STEP=2" in train_log.read_text()):
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    locked = run(with_config(often), ROOT)
    assert locked.returncode != 0 and "LockException" in locked.stdout + locked.stderr
    with_results = micro_variant(tmp_path / "beta3_results.yaml",
                                 lambda c: (checkpointed(c), c.update(results=str(results))))
    # one core: one thread per job, as the micro run's --max-threads 1 (threads change float sums)
    make = subprocess.run(["make", "reproduce", "CORES=1", f"CONFIG={with_results}"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert make.returncode == 0, make.stdout[-3000:] + make.stderr[-3000:]
    assert "resumed from step 2" in train_log.read_text()
    assert planned(args, often) == {}
    uninterrupted = tmp_path / "uninterrupted"
    cfg = load_config(often)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with world_folder(world_dir(results)):  # as the job's setup does
            train(prefs_path=results / "seed1/preferences/oracle_reversed.jsonl",
                  model_dir=results / "base_model/model", adapter_dir=uninterrupted / "adapter",
                  log_csv=uninterrupted / "log.csv", curves_png=uninterrupted / "curves.png", title="t",
                  objective=ObjectiveSettings.of(cfg["objectives"]["dpo"]),
                  training=TrainingSettings.of(cfg["training"]["miniature"]), seed=1, device="cpu",
                  dtype="float32", reference_path=results / "seed1/preferences/oracle_reversed.reference.safetensors")
    finally:
        torch.set_num_threads(threads)
    for name in ("adapter/adapter_model.safetensors", "log.csv"):
        assert (uninterrupted / name).read_bytes() == (results / "seed1/train/oracle_reversed" / name).read_bytes()
    prefs.write_text(original)  # the micro run as it was, for test_slurm
    assert run(args, ROOT).returncode == 0 and planned(args, ROOT / "tests/configs/micro.yaml") == {}


def test_a_paper_table_is_a_target_that_plans_exactly_its_runs(tmp_path):
    """`snakemake <results>/tables/<name>.md` on a fresh folder: the base model's evaluation and
    the table's runs (micro: seva and aspo), with what they need upstream, and no other run."""
    fresh = tmp_path / "results"
    dry = run(["-n", str(fresh / "tables/study_seva_aspo.md"), "--configfile", "tests/configs/micro.yaml",
               "--config", f"results={fresh}"], ROOT)
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    trained = set(re.findall(r"seed1/train/(\w+)/adapter", dry.stdout))
    evaluated = set(re.findall(r"eval/(\w+)\.seed1\b", dry.stdout))
    assert trained == evaluated == {"seva", "aspo"}
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", dry.stdout, re.M))
    assert counts["paper_table"] == "1" and counts["evaluate_base"] == "1" and "tables" not in counts


def test_sharded_generation_plans_one_job_per_shard_and_a_join(tmp_path):
    import yaml

    cfg = yaml.safe_load((ROOT / "tests/configs/micro.yaml").read_text())
    cfg["generation"]["sample2"]["shards"] = 3
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    out = run(["-n", "--configfile", str(tmp_path / "c.yaml"), "--config", f"results={tmp_path / 'r'}"], ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    views = {"smpro": 3, "consr": 2}  # response files of generation sample2
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out.stdout, re.M))
    assert int(counts["sample_responses_shard"]) == 3 * sum(views.values())
    assert int(counts["join_response_shards"]) == sum(views.values())
    assert "0-of-3.jsonl" in out.stdout and "2-of-3.jsonl" in out.stdout


def test_split_evaluation_plans_one_job_per_task_and_model(tmp_path):
    import yaml

    cfg = yaml.safe_load((ROOT / "tests/configs/micro.yaml").read_text())
    cfg["evaluation"]["split_tasks"] = True
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    out = run(["-n", "--configfile", str(tmp_path / "c.yaml"), "--config", f"results={tmp_path / 'r'}"], ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out.stdout, re.M))
    models = 1 + sum(len(r.get("seeds", cfg["seeds"])) for r in cfg["runs"].values())
    assert int(counts["evaluate_task"]) == models * len(cfg["evaluation"]["tasks"])
    assert int(counts["evaluate"]) + int(counts["evaluate_base"]) == models
    assert "eval/tasks/base/prefalign_pope" in out.stdout
