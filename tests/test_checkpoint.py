"""A training killed or signalled mid-run resumes from its checkpoint and ends byte-identical
to an uninterrupted run (each run in a process of its own, as a job runs)."""
import base64
import os
import pickle
import subprocess
import sys

import pandas as pd
import pytest

from prefalign.io import write_jsonl
from prefalign.settings import BaseModelSettings, ObjectiveSettings, TrainingSettings

STEPS = 7  # 7 records, batch 2, repeated twice: 14 items


@pytest.fixture(scope="module")
def inputs(small_world, tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkpoint_inputs")
    model, processor = tiny_model
    model.save_pretrained(folder / "model")
    processor.save_pretrained(folder / "model")
    image = str(small_world / "images" / "eval_describe_000000.png")
    pairs = [("what colour is the circle?", "red", "blue"), ("is there a red square?", "no", "yes"),
             ("how many circles are there?", "one", "three"), ("where is the red circle?", "top", "bottom"),
             ("what is at the top?", "a small red circle", "a sign"), ("what colour is the square?", "green", "red"),
             ("describe the image.", "there is a small red circle.", "nothing")]
    write_jsonl(folder / "prefs.jsonl", [{"id": f"r{k}", "image": image, "question": q, "extras": {},
                                         "groups": [[{"text": good}], [{"text": bad}]]}
                                        for k, (q, good, bad) in enumerate(pairs)])
    return folder


def in_fresh_process(stage: str, kwargs: dict, fault=None):
    """`prefalign.stages.<stage>.<stage>(**kwargs)` in a process of its own, as a job runs;
    `fault` (step, signal name) injected."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFALIGN_FAULT")}
    if fault:
        env.update(PREFALIGN_FAULT_AT_STEP=str(fault[0]), PREFALIGN_FAULT_SIGNAL=fault[1])
    code = ("import base64, logging, pickle, sys; logging.basicConfig(level=logging.INFO)\n"
            f"from prefalign.stages.{stage} import {stage}; {stage}(**pickle.loads(base64.b64decode(sys.argv[1])))")
    return subprocess.run([sys.executable, "-c", code, base64.b64encode(pickle.dumps(kwargs)).decode()], env=env,
                          capture_output=True, text=True)


def train(inputs, out, tcfg, fault=None):
    return in_fresh_process("train", dict(
        prefs_path=str(inputs / "prefs.jsonl"), model_dir=str(inputs / "model"), adapter_dir=str(out / "adapter"),
        log_csv=str(out / "log.csv"), curves_png=str(out / "curves.png"), title="t",
        objective=ObjectiveSettings(loss="dpo", beta=0.1), training=TrainingSettings.from_partial(tcfg), seed=3,
        device="cpu", dtype="float32"), fault)


def outputs(out) -> tuple[bytes, bytes]:
    return (out / "adapter" / "adapter_model.safetensors").read_bytes(), (out / "log.csv").read_bytes()


TCFG = {"lora": {"r": 4, "alpha": 8, "dropout": 0.1}, "lr": 1e-2, "epochs": 1, "repeat": 2, "batch_size": 2,
        "warmup_ratio": 0.2, "max_grad_norm": 0.5, "checkpoint_every": 2}


@pytest.fixture(scope="module")
def uninterrupted(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    whole = train(inputs, out, TCFG)
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert len((out / "log.csv").read_text().splitlines()) == STEPS + 1
    assert not (out / "checkpoint").exists()  # removed when the run completes
    return out


# CI runs TERM (the scheduler's warning) and the SFT's KILL below; make test-all adds KILL here
@pytest.mark.parametrize("signal_name,resumed_at", [pytest.param("KILL", 4, marks=pytest.mark.extended), ("TERM", 6)])
def test_an_interrupted_training_resumes_byte_identical(inputs, uninterrupted, tmp_path, signal_name, resumed_at):
    """KILL at step 5 loses the steps since the checkpoint at 4; TERM (a scheduler's warning)
    finishes step 5 and checkpoints at 6 before it stops. Dropout draws from the RNG."""
    out = tmp_path / "interrupted"
    stopped = train(inputs, out, TCFG, fault=(5, signal_name))
    assert stopped.returncode != 0 and not (out / "adapter").exists()
    assert (out / "checkpoint/rank0.pt").exists()
    if signal_name == "TERM":
        assert "Stopped: train: stopped on a signal after step 6 of 7" in stopped.stderr
    rerun = train(inputs, out, TCFG)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"resumed from step {resumed_at}" in rerun.stderr
    assert outputs(out) == outputs(uninterrupted)
    assert not (out / "checkpoint").exists()


@pytest.mark.extended
def test_an_fsdp_training_killed_resumes_byte_identical(inputs, tmp_path):
    """Two FSDP processes (each holds half of every weight and optimizer state) killed at step
    5 resume from their own shards of the checkpoint at step 4 and end as an uninterrupted
    two-process run (make test-all: about a minute)."""
    tcfg = {**TCFG, "processes": 2, "fsdp": True}
    whole = train(inputs, tmp_path / "whole", tcfg)
    assert whole.returncode == 0, whole.stderr[-3000:]
    out = tmp_path / "interrupted"
    assert train(inputs, out, tcfg, fault=(5, "KILL")).returncode != 0
    assert (out / "checkpoint/rank0.pt").exists() and (out / "checkpoint/rank1.pt").exists()
    rerun = train(inputs, out, tcfg)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert rerun.stderr.count("resumed from step 4") == 2  # both processes
    assert outputs(out) == outputs(tmp_path / "whole")


def test_a_checkpoint_is_resumed_for_its_key_only(tmp_path):
    """The in-process form of the next test (make test-all): a checkpoint comes back, weights
    and RNG state with it, under the key it was written for, whatever the checkpoint interval;
    other settings or a rewritten input file make another key, and it is not resumed."""
    import torch

    from prefalign.checkpoint import Checkpoints, fingerprint

    def trainable():
        model = torch.nn.Linear(3, 2)
        opt = torch.optim.AdamW(model.parameters(), lr=0.1)
        return model, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)

    data = tmp_path / "prefs.jsonl"
    data.write_text("{}\n")
    key = fingerprint({"lr": 0.1, "checkpoint_every": 2}, [data, None])
    model, opt, sched = trainable()
    with Checkpoints(tmp_path / "ck", key, 2, model, opt, sched) as ck:
        ck.after_step(1, 5, {"rows": []})  # not due
        assert not (tmp_path / "ck").exists()
        ck.after_step(2, 5, {"rows": [1, 2]})
    weights, rng = model.weight.detach().clone(), torch.get_rng_state()
    torch.rand(3)
    assert fingerprint({"lr": 0.1, "checkpoint_every": 3}, [data]) == key
    other = [fingerprint({"lr": 0.2, "checkpoint_every": 2}, [data])]
    data.write_text("{} \n")
    other.append(fingerprint({"lr": 0.1, "checkpoint_every": 2}, [data]))
    for wrong in other:
        assert Checkpoints(tmp_path / "ck", wrong, 2, *trainable()).resume() == (0, None)
    model, opt, sched = trainable()
    assert Checkpoints(tmp_path / "ck", key, 3, model, opt, sched).resume() == (2, {"rows": [1, 2]})
    assert torch.equal(model.weight, weights) and torch.equal(torch.get_rng_state(), rng)


@pytest.mark.extended
def test_a_checkpoint_of_other_settings_is_not_resumed(inputs, tmp_path):
    tcfg = {"lora": {"r": 4, "alpha": 8}, "lr": 1e-2, "epochs": 1, "repeat": 2, "batch_size": 2,
            "checkpoint_every": 2}
    out = tmp_path / "run"
    assert train(inputs, out, tcfg, fault=(3, "KILL")).returncode != 0
    rerun = train(inputs, out, {**tcfg, "lr": 2e-2, "checkpoint_every": 3})
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "holds none for these inputs and settings; starting at step 0" in rerun.stderr
    assert "resumed" not in rerun.stderr
    fresh = train(inputs, tmp_path / "fresh", {**tcfg, "lr": 2e-2})  # checkpoint_every changes nothing
    assert fresh.returncode == 0 and outputs(out) == outputs(tmp_path / "fresh")


def sft(world, out, checkpoint_every, fault=None):
    """The train_base_model stage: the miniature's SFT."""
    layers = dict(intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    bcfg = {"kind": "tiny_llava", "tiny": {"patch_size": 10, "vision": {"hidden_size": 32, **layers},
                                           "text": {"hidden_size": 32, **layers, "num_key_value_heads": 2,
                                                    "max_position_embeddings": 256, "initializer_range": 0.1}},
            "sft": {"steps": 9, "batch_size": 64, "lr": 2e-3, "weight_decay": 0.01, "warmup_frac": 0.15,
                    "clip": 1.0, "seed": 0, "checkpoint_every": checkpoint_every}}
    return in_fresh_process("train_base_model", dict(
        world_dir=str(world), model_dir=str(out / "model"), log_csv=str(out / "sft_log.csv"),
        base=BaseModelSettings.of(bcfg), image_size=30), fault)


def test_an_interrupted_sft_resumes_byte_identical(small_world, tmp_path):
    """The SFT's own state (its batch order's RNG, the batches left of the epoch) comes back
    too: the small world's 381 answers make 6 batches of 64, so the run resumed at step 4 has 2
    batches left and draws the second epoch's order at step 6."""
    whole = sft(small_world, tmp_path / "whole", 0)
    assert whole.returncode == 0, whole.stderr[-3000:]
    out = tmp_path / "interrupted"
    assert sft(small_world, out, 4, fault=(5, "KILL")).returncode != 0
    rerun = sft(small_world, out, 4)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resumed from step 4" in rerun.stderr
    assert (out / "model/model.safetensors").read_bytes() == (tmp_path / "whole/model/model.safetensors").read_bytes()
    without_seconds = [pd.read_csv(d / "sft_log.csv").drop(columns="seconds") for d in (out, tmp_path / "whole")]
    assert len(without_seconds[0]) == 2 and without_seconds[0].equals(without_seconds[1])  # steps 0 and 8
    assert not (out / "checkpoint").exists()
