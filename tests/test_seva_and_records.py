import pytest

from prefalign.io import RecordError
from prefalign.methods import method, objective
from prefalign.methods.records import chosen_rejected, validate_record
from prefalign.methods.seva import build_seva_pairs
from prefalign.stages.build_preferences import check_counts
from prefalign.settings import PreferenceSetSettings


def _resp(text):
    return {"responses": [{"text": text, "n_tokens": len(text.split()) + 1}]}


def test_seva_pairs_drop_identical_and_count():
    prompts = [{"id": str(i), "image": f"{i}.png", "question": "q?"} for i in range(4)]
    clean = {"0": _resp("red"), "1": _resp("blue"), "2": _resp("yes"), "3": _resp("two ")}
    noisy = {"0": _resp("red"), "1": _resp("green"), "2": _resp("no"), "3": _resp("two")}
    recs, stats = build_seva_pairs(prompts, clean, noisy, "noise500")
    assert stats == {"prompts": 4, "kept": 2, "rejected": {"identical_pair": 2}}
    assert [r["id"] for r in recs] == ["1", "2"]
    check_counts(stats, recs, "seva")
    for wrong in ({**stats, "rejected": {"identical_pair": 1}}, {**stats, "kept": 3}):
        with pytest.raises(RuntimeError, match="method seva: 4 prompts, 2 records.*do not add up"):
            check_counts(wrong, recs, "seva")
    c, r = chosen_rejected(recs[0])
    assert (c["text"], c["source"], r["text"], r["source"]) == ("blue", "clean", "green", "noise500")
    for i, rec in enumerate(recs):
        validate_record(rec, "mem", i)


def test_method_and_objective_registry():
    seva = PreferenceSetSettings(method="seva", prompts="p", augmentation="noise500", generation="greedy")
    assert method("seva").needs(seva) == [
        ("clean", "greedy"), ("noise500", "greedy")]
    with pytest.raises(ValueError, match="unknown preference method 'nope'"):
        method("nope")
    with pytest.raises(ValueError, match="unknown objective"):
        objective("nope")


def test_malformed_record_names_field():
    with pytest.raises(RecordError, match=r"prefs.jsonl: record 3: field 'groups'"):
        validate_record({"id": "x", "image": "i", "question": "q", "groups": [[{"text": "a"}]]},
                        "prefs.jsonl", 3)
    with pytest.raises(RecordError, match=r"field 'question': missing"):
        validate_record({"id": "x", "image": "i", "groups": []}, "prefs.jsonl", 1)


def test_oracle_truth_labels_give_every_prompt_its_ground_truth_answer(tmp_path):
    """`labels: truth` (labelled data for continual SFT): one record per prompt, the true answer
    chosen against the first sample, all-correct prompts kept; the controls drop those."""
    import json

    from prefalign.methods import oracle

    scene = {"objects": []}
    answers = {"p1": {"family": "colour", "answer": "red", "scene": scene},
                "p2": {"family": "colour", "answer": "blue", "scene": scene}}
    (tmp_path / "answers.json").write_text(json.dumps(answers))
    prompts = [{"id": p, "image": f"images/{p}.png", "question": "what colour is the ball?"} for p in answers]
    samples = {"p1": {"responses": [{"text": "green"}, {"text": "red"}]},
               "p2": {"responses": [{"text": "blue"}, {"text": "blue"}]}}
    resources = {"answers": tmp_path / "answers.json", "seed": 1}

    def built(labels):
        cfg = PreferenceSetSettings(method="oracle", prompts="p", generation="sample5", labels=labels)
        return oracle.build(prompts, {("clean", "sample5"): samples}, cfg, resources)

    records, stats = built("truth")
    assert [(r["groups"][0][0]["text"], r["groups"][1][0]["text"]) for r in records] == [("red", "green"),
                                                                                      ("blue", "blue")]
    assert all(r["groups"][0][0]["source"] == "ground_truth" and r["extras"]["reads_ground_truth"] for r in records)
    assert stats["kept"] == 2 and stats["chosen_from_ground_truth"] == 2
    records, stats = built("correct")  # the control: p2's samples are all correct, so no pair
    assert [(r["id"], r["groups"][0][0]["text"], r["groups"][1][0]["text"]) for r in records] == [("p1", "red",
                                                                                                  "green")]
    assert stats["rejected"] == {"all_correct": 1}
