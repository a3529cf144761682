"""Reference log-probs computed once per preference set: training reads them and trains as if
it had recomputed them at every step."""
import copy

import pytest
import torch
from test_losses_and_logprobs import _images

from prefalign import reference
from prefalign.settings import ObjectiveSettings, TrainingSettings
from prefalign.io import RecordError
from prefalign.methods import objective
from prefalign.training import add_lora, train_preferences

LORA = {"r": 4, "alpha": 8}
QUESTIONS = ["what colour is the circle?", "how many squares are there?", "is there a triangle?",
             "describe the image."]
GROUPS = [[["red"], ["blue", "green circle"], ["one"]], [["two"], ["three squares"]],
          [["yes"], ["no"], ["no there is not"]], [["a red circle."], ["nothing at all."]]]


def records():
    return [{"id": f"r{k}", "image": str(k), "question": q, "extras": {},
             "groups": [[{"text": t} for t in g] for g in gs]} for k, (q, gs) in enumerate(zip(QUESTIONS, GROUPS))]


@pytest.mark.parametrize("loss,cfg", [("dpo", {"beta": 0.1}),
                                      ("mgp", {"steepness": 0.1, "swap": "cauchy", "alpha": 0.17})])
def test_training_with_stored_reference_equals_recomputing_it(tiny_model, small_world, tmp_path, loss, cfg):
    base, processor = tiny_model
    images = _images(small_world, len(QUESTIONS))
    load = lambda r: images[int(r["image"])]  # noqa: E731
    stored = records()
    reference.write(tmp_path / "ref.safetensors", reference.compute(stored, base, processor, load, batch_size=3))
    reference.attach(stored, tmp_path / "ref.safetensors")
    tcfg = TrainingSettings.from_partial({"lora": LORA, "lr": 1e-2, "epochs": 2, "batch_size": 3})
    runs = {}
    for name, recs in (("recomputed", records()), ("stored", stored)):
        torch.manual_seed(0)
        model = add_lora(copy.deepcopy(base), tcfg.lora)
        ocfg = ObjectiveSettings.from_partial({"loss": loss, **cfg})
        rows = train_preferences(model, processor, recs, load, objective(loss), ocfg, tcfg, seed=0)
        runs[name] = (rows, {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n})
    assert len(runs["stored"][0]) == 3  # 4 records, 2 epochs, batches of 3
    for a, b in zip(runs["recomputed"][0], runs["stored"][0]):
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-5)
    for n, p in runs["recomputed"][1].items():
        torch.testing.assert_close(runs["stored"][1][n], p, atol=1e-5, rtol=0)
    assert any(p.abs().sum() > 0 for n, p in runs["stored"][1].items() if "lora_B" in n)  # it trained


def test_a_reference_file_of_other_records_is_named(tiny_model, small_world, tmp_path):
    base, processor = tiny_model
    images = _images(small_world, len(QUESTIONS))
    recs = records()
    reference.write(tmp_path / "ref.safetensors",
                    reference.compute(recs, base, processor, lambda r: images[int(r["image"])]))
    fewer = records()[:3]
    with pytest.raises(RecordError, match="the preference file has 3 records; rerun rule reference_logps"):
        reference.attach(fewer, tmp_path / "ref.safetensors")
    changed = records()
    changed[1]["groups"][1].append({"text": "four"})
    with pytest.raises(RecordError, match="record r1: field 'responses': 2 stored, the record has 3"):
        reference.attach(changed, tmp_path / "ref.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="bad.safetensors: unreadable reference log-probs"):
        reference.attach(records(), tmp_path / "bad.safetensors")
