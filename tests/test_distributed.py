"""Data-parallel training (torchrun, 2 CPU processes on gloo) takes the same steps as one process."""
import pytest
import torch

from prefalign import stages
from prefalign.io import write_jsonl


@pytest.mark.slow
def test_two_processes_train_the_same_adapter_as_one(small_world, tiny_model, tmp_path):
    from safetensors.torch import load_file

    model, processor = tiny_model
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
                                                   ("what is at the top?", "a small red circle", "a sign")])]
    write_jsonl(tmp_path / "prefs.jsonl", records)
    tcfg = {"lora": {"r": 4, "alpha": 8}, "lr": 1e-2, "epochs": 1, "batch_size": 4, "warmup_ratio": 0.0}
    adapters = []
    for processes in (1, 2):
        out = tmp_path / f"p{processes}"
        stages.train(tmp_path / "prefs.jsonl", tmp_path / "model", out / "adapter", out / "log.csv", out / "curves.png",
                     {"label": "t"}, {"loss": "dpo", "beta": 0.1}, {**tcfg, "processes": processes}, 0, "cpu", "float32")
        adapters.append(load_file(out / "adapter" / "adapter_model.safetensors"))
        assert (out / "log.csv").exists() and (out / "curves.png").exists()
    assert adapters[0].keys() == adapters[1].keys()
    moved = [k for k in adapters[0] if "lora_B" in k and adapters[0][k].abs().sum() > 0]
    assert moved  # the two steps changed the adapter
    for k in adapters[0]:
        torch.testing.assert_close(adapters[1][k], adapters[0][k], atol=1e-6, rtol=1e-5)
    logs = [(tmp_path / f"p{n}" / "log.csv").read_text().splitlines() for n in (1, 2)]
    l1, l2 = ([float(line.split(",")[1]) for line in log[1:]] for log in logs)
    assert l1 == pytest.approx(l2, rel=1e-5)
