"""Data-parallel training (torchrun, 2 CPU processes on gloo) takes the same steps as one process."""
import re

import pytest
import torch

from prefalign.settings import ObjectiveSettings, TrainingSettings
from prefalign.io import write_jsonl
from prefalign.stages.train import train


@pytest.mark.slow
# CI runs the sharded LLaVA; the other three (same code, other layouts) run in `make test-all`
@pytest.mark.parametrize("arch,fsdp", [pytest.param("llava", False, marks=pytest.mark.extended), ("llava", True),
                                       pytest.param("llava_onevision", True, marks=pytest.mark.extended),
                                       pytest.param("qwen2_5_vl", True, marks=pytest.mark.extended)],
                         ids=["llava-replicated", "llava-fsdp", "llava_onevision-fsdp", "qwen2_5_vl-fsdp"])
def test_two_processes_train_the_same_adapter_as_one(small_world, tiny_model, tmp_path, arch, fsdp, capfd):
    """Replicated (each process holds the model) or FSDP-sharded (each holds half of every
    weight, gradient and optimizer state), 2 processes take the steps one process takes."""
    from safetensors.torch import load_file

    from prefalign.stages.train_base_model import world_corpus
    from tiny_real_models import tiny_llava_onevision, tiny_qwen2_5_vl

    builders = {"llava_onevision": tiny_llava_onevision, "qwen2_5_vl": tiny_qwen2_5_vl}
    model, processor = tiny_model if arch == "llava" else builders[arch](world_corpus(small_world))
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    image = str(small_world / "images" / "eval_describe_000000.png")
    records = [{"id": f"r{k}", "image": image, "question": q, "extras": {},
                "groups": [[{"text": good}], [{"text": bad}]]}
               for k, (q, good, bad) in enumerate([("what colour is the circle?", "red", "blue"),
                                                   ("describe the image.", "there is a small red circle.", "nothing"),
                                                   ("is there a red square in the image?", "no", "yes"),
                                                   ("how many circles are there?", "one", "three"),
                                                   ("where is the red circle?", "top", "bottom left"),
                                                   ("what is at the top?", "a small red circle", "a sign"),
                                                   ("what colour is the square?", "green", "red")])]
    write_jsonl(tmp_path / "prefs.jsonl", records)
    # batches of 3, 3 and 1: the processes get unequal shares (2 and 1 items, then 1 and none,
    # where FSDP runs a weight-0 pass)
    tcfg = {"lora": {"r": 4, "alpha": 8}, "lr": 1e-2, "epochs": 1, "batch_size": 3,
            "warmup_ratio": 0.0, "max_grad_norm": 0.05}
    adapters = []
    for processes in (1, 2):
        out = tmp_path / f"p{processes}"
        train(prefs_path=tmp_path / "prefs.jsonl", model_dir=tmp_path / "model", adapter_dir=out / "adapter",
              log_csv=out / "log.csv", curves_png=out / "curves.png", title="t",
              objective=ObjectiveSettings(loss="dpo", beta=0.1),
              training=TrainingSettings.from_partial({**tcfg, "processes": processes, "fsdp": fsdp}), seed=0,
              device="cpu", dtype="float32")
        adapters.append(load_file(out / "adapter" / "adapter_model.safetensors"))
        if processes == 2 and fsdp:  # each process holds about half of the weights
            err = capfd.readouterr().err
            held = [tuple(map(int, m)) for m in re.findall(r"fsdp: process \d holds (\d+) of (\d+)", err)]
            assert len(held) == 2 and all(0.45 < local / total < 0.55 for local, total in held), held
        assert (out / "log.csv").exists() and (out / "curves.png").exists()
    assert adapters[0].keys() == adapters[1].keys()
    moved = [k for k in adapters[0] if "lora_B" in k and adapters[0][k].abs().sum() > 0]
    assert moved  # the two steps changed the adapter
    for k in adapters[0]:
        # float32 sums in another order; Adam's first steps (lr 1e-2, about 1e-2 per weight)
        # divide by sqrt(v), so a gradient near 0 can move 1e-6 apart
        torch.testing.assert_close(adapters[1][k], adapters[0][k], atol=1e-5, rtol=1e-4)
    logs = [(tmp_path / f"p{n}" / "log.csv").read_text().splitlines() for n in (1, 2)]
    l1, l2 = ([float(line.split(",")[1]) for line in log[1:]] for log in logs)
    assert l1 == pytest.approx(l2, rel=1e-5)
