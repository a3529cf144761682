"""A training killed or signalled mid-run resumes from its checkpoint and ends byte-identical
to an uninterrupted run (each run in a process of its own, as a job runs)."""
import json
import os
import subprocess
import sys

import pytest

from prefalign.io import write_jsonl

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


def train(inputs, out, tcfg, fault=None):
    """stages.train in a fresh process; `fault` (step, signal name) injected."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFALIGN_FAULT")}
    if fault:
        env.update(PREFALIGN_FAULT_AT_STEP=str(fault[0]), PREFALIGN_FAULT_SIGNAL=fault[1])
    args = dict(pref_path=str(inputs / "prefs.jsonl"), model_dir=str(inputs / "model"),
                adapter_dir=str(out / "adapter"), log_csv=str(out / "log.csv"), curves_png=str(out / "curves.png"),
                title="t", obj_cfg={"loss": "dpo", "beta": 0.1}, tcfg=tcfg, seed=3, device="cpu", dtype="float32")
    code = ("import json, logging, sys; logging.basicConfig(level=logging.INFO)\n"
            "from prefalign import stages; stages.train(**json.loads(sys.argv[1]))")
    return subprocess.run([sys.executable, "-c", code, json.dumps(args)], env=env, capture_output=True, text=True)


def outputs(out) -> tuple[bytes, bytes]:
    return (out / "adapter" / "adapter_model.safetensors").read_bytes(), (out / "log.csv").read_bytes()


@pytest.mark.parametrize("signal_name,resumed_at", [("KILL", 4), ("TERM", 6)])
def test_an_interrupted_training_resumes_byte_identical(inputs, tmp_path, signal_name, resumed_at):
    """KILL at step 5 loses the steps since the checkpoint at 4; TERM (a scheduler's warning)
    finishes step 5 and checkpoints at 6 before it stops."""
    tcfg = {"lora": {"r": 4, "alpha": 8, "dropout": 0.1}, "lr": 1e-2, "epochs": 1, "repeat": 2, "batch_size": 2,
            "warmup_ratio": 0.2, "max_grad_norm": 0.5, "checkpoint_every": 2}
    whole = train(inputs, tmp_path / "whole", tcfg)
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert len((tmp_path / "whole/log.csv").read_text().splitlines()) == STEPS + 1
    assert not (tmp_path / "whole/checkpoint").exists()  # removed when the run completes

    out = tmp_path / "interrupted"
    stopped = train(inputs, out, tcfg, fault=(5, signal_name))
    assert stopped.returncode != 0 and not (out / "adapter").exists()
    assert (out / "checkpoint/rank0.pt").exists()
    if signal_name == "TERM":
        assert "Stopped: train: stopped on a signal after step 6 of 7" in stopped.stderr
    rerun = train(inputs, out, tcfg)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"resumed from step {resumed_at}" in rerun.stderr
    assert outputs(out) == outputs(tmp_path / "whole")
    assert not (out / "checkpoint").exists()


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
