"""Released preference datasets (ConSR's Tables 5 and 10): POVID's and RLAIF-V's pairs read
under the sample_prompts stage's prompt ids, and the miniature's POVID-style stand-in."""
import json
import random

import pytest

from prefalign.io import RecordError
from prefalign.methods import method
from prefalign.released import hallucinate, povid_like, povid_pairs, rlaif_v_pairs
from prefalign.settings import PreferenceSetSettings

SFT = [{"id": "sft_000000", "image": "images/a.png", "conversations": [
           {"from": "human", "value": "<image>\nis there a red circle in the image?"}, {"from": "gpt", "value": "yes"},
           {"from": "human", "value": "what colour is the square?"}, {"from": "gpt", "value": "blue"},
           {"from": "human", "value": "what does the sign say?"}, {"from": "gpt", "value": "no sign here"}]},
       {"id": "sft_000001", "image": "images/b.png", "conversations": [
           {"from": "human", "value": "<image>\ndescribe the image."},
           {"from": "gpt", "value": "there is a small red circle at the top left."}]}]


def test_hallucinate_injects_one_error_of_the_worlds_vocabulary():
    rng = random.Random(0)
    assert hallucinate("yes", rng) == "no" and hallucinate("no", rng) == "yes"
    assert hallucinate("blue", rng) in {"red", "orange", "yellow", "green", "purple"}
    assert hallucinate("top left", rng) in {"top", "top right", "left", "center", "right", "bottom left", "bottom",
                                            "bottom right"}  # one position, not "top" inside it
    assert hallucinate("87", rng) != "87"
    assert hallucinate("no sign here", rng) is None  # nothing the world's vocabulary names
    described = "there is a small red circle at the top left."
    for _ in range(10):
        bad = hallucinate(described, rng)
        assert bad != described and (bad.startswith(described + " there is a ") or len(bad) < len(described) + 8)


def test_povid_like_writes_povids_format_and_reads_back_under_prompt_ids(tmp_path):
    records, counts = povid_like(SFT, 2, seed=0)
    assert counts == {"images": 2, "pairs": 3, "turns_left_out": 1}  # the sign turn has nothing to change
    assert povid_like(SFT, 2, seed=0) == (records, counts)  # seeded
    for r in records:
        humans = [m for m in r["conversations"] if m["from"] == "human"]
        assert humans == [m for m in r["rejected_conversations"] if m["from"] == "human"]
        assert humans[0]["value"].startswith("<image>\n") and all("<image>" not in h["value"] for h in humans[1:])
    (tmp_path / "povid.json").write_text(json.dumps(records))
    pairs = povid_pairs(tmp_path / "povid.json")  # through the POVID loader's own checks
    assert set(pairs) == {"sft_000000#0", "sft_000000#1", "sft_000001"}
    assert pairs["sft_000000#0"] == ("yes", "no") and pairs["sft_000000#1"][0] == "blue"
    assert pairs["sft_000000#1"][1] != "blue" and pairs["sft_000001"][1] != pairs["sft_000001"][0]


def test_povid_like_is_the_same_in_every_process():
    """Seeded, so the same in another interpreter whatever its string hashing (a set's order)."""
    import os
    import subprocess
    import sys

    script = ("import json, sys; from prefalign.released import povid_like; "
              "print(json.dumps(povid_like(json.loads(sys.argv[1]) * 20, 30, seed=3)))")
    outs = {subprocess.run([sys.executable, "-c", script, json.dumps(SFT)], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": str(h)}).stdout for h in (1, 2, 3)}
    assert len(outs) == 1


def test_rlaif_v_pairs_and_the_released_method(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"idx": [7, 8], "chosen": ["a cat.", "two dogs."], "rejected": ["a dog.", "one dog."],
                             "question": ["what?", "how many?"]}), tmp_path / "RLAIF-V-Dataset_000.parquet")
    pairs = rlaif_v_pairs(tmp_path)
    assert pairs == {"7": ("a cat.", "a dog."), "8": ("two dogs.", "one dog.")}
    prompts = [{"id": "8", "image": "x.png", "question": "how many?"}]
    released = method("released")
    cfg = PreferenceSetSettings(method="released", prompts="rlaif_v")
    assert released.needs(cfg) == []
    records, stats = released.build(prompts, {}, cfg, {"source": ("rlaif_v", tmp_path)})
    assert [[g[0]["text"] for g in r["groups"]] for r in records] == [["two dogs.", "one dog."]]
    assert stats == {"prompts": 1, "kept": 1, "rejected": {}}
    with pytest.raises(RecordError, match=r"record 9: field 'id': no released pair"):
        released.build([{**prompts[0], "id": "9"}], {}, cfg, {"source": ("rlaif_v", tmp_path)})


def test_build_preferences_stage_writes_a_released_sets_records(tmp_path):
    from prefalign.io import read_json, read_jsonl, write_jsonl
    from prefalign.stages.build_preferences import build_preferences

    records, _ = povid_like(SFT, 2, seed=0)
    (tmp_path / "povid.json").write_text(json.dumps(records))
    write_jsonl(tmp_path / "prompts.jsonl", [{"id": "sft_000001", "image": "images/b.png",
                                              "question": "describe the image."}])
    build_preferences(prompts_path=tmp_path / "prompts.jsonl", response_paths={}, out_path=tmp_path / "prefs.jsonl",
                      stats_path=tmp_path / "stats.json",
                      preference_set=PreferenceSetSettings(method="released", prompts="povid"), seed=1,
                      source_path=tmp_path / "povid.json", source_format="povid")
    (record,) = read_jsonl(tmp_path / "prefs.jsonl")
    assert record["groups"][0][0]["text"] == "there is a small red circle at the top left."
    assert record["groups"][1][0]["text"] != record["groups"][0][0]["text"]
    assert read_json(tmp_path / "stats.json") == {"prompts": 1, "kept": 1, "rejected": {}}


def test_labelled_sets_read_a_sources_own_answers(tmp_path):
    """Continual SFT's data (SeVa Table 3 on LLaVA-665k): each prompt's answer from its source,
    against the base model's sample where a generation is set, else against itself; LLaVA-665k's
    text-only records are left out of the source, not an error."""
    from prefalign.released import source_answers

    mix = [SFT[0], {"id": "text_only", "conversations": [{"from": "human", "value": "hi"},
                                                          {"from": "gpt", "value": "hello"}]}, SFT[1]]
    (tmp_path / "mix.json").write_text(json.dumps(mix))
    answers = source_answers("llava_json", tmp_path / "mix.json")
    assert answers["sft_000000#1"] == "blue" and answers["sft_000001"].startswith("there is")
    assert "text_only" not in answers
    labelled = method("labelled")
    prompts = [{"id": "sft_000000#1", "image": "images/a.png", "question": "what colour is the square?"}]
    tied = PreferenceSetSettings(method="labelled", prompts="mix")
    assert labelled.needs(tied) == []
    (record,), _ = labelled.build(prompts, {}, tied, {"source": ("llava_json", tmp_path / "mix.json")})
    assert [g[0]["text"] for g in record["groups"]] == ["blue", "blue"] and record["extras"]["tied"]
    sampled = PreferenceSetSettings(method="labelled", prompts="mix", generation="greedy")
    assert labelled.needs(sampled) == [("clean", "greedy")]
    responses = {("clean", "greedy"): {"sft_000000#1": {"responses": [{"text": "red"}]}}}
    (record,), _ = labelled.build(prompts, responses, sampled, {"source": ("llava_json", tmp_path / "mix.json")})
    assert [g[0]["text"] for g in record["groups"]] == ["blue", "red"]
