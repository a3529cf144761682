"""Evaluation through lmms-eval: per-task jobs joined into one folder, and empty answers."""
import logging

import pytest

from prefalign.evaluation import check_responses, evaluate_to, join_evaluations

TASKS = ["prefalign_pope", "prefalign_vqa"]


def test_per_task_jobs_join_into_the_files_of_one_job(tiny_model, small_world, tmp_path):
    model, processor = tiny_model
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    common = dict(model_path=str(tmp_path / "model"), adapter=None, data_dir=small_world / "eval", limit=3)
    evaluate_to(tmp_path / "one", tasks=TASKS, **common)
    for t in TASKS:
        evaluate_to(tmp_path / "tasks" / t, tasks=[t], **common)
    join_evaluations([tmp_path / "tasks" / t for t in TASKS], TASKS, tmp_path / "joined")
    for name in ("results.json", "samples.jsonl", "skipped.json"):
        assert (tmp_path / "joined" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name
    with pytest.raises(ValueError, match="prefalign_pope.*also in another task's folder"):
        join_evaluations([tmp_path / "tasks" / "prefalign_pope"] * 2, TASKS, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_a_task_whose_every_answer_is_empty_stops_and_some_empty_answers_are_logged(caplog):
    # lmms-eval's model classes turn a failed generation into an empty answer
    with pytest.raises(RuntimeError, match="prefalign_vqa: all 2 answers .* are empty"):
        check_responses({"prefalign_vqa": [{"response": [""]}, {"response": ["  "]}]}, "llava_hf")
    with caplog.at_level(logging.WARNING, logger="prefalign"):
        check_responses({"prefalign_vqa": [{"response": [""]}, {"response": ["red"]}],
                         "mme": [{"response": [[-1.2, True]]}]}, "llava_hf")
    assert "prefalign_vqa: 1 of 2 answers are empty" in caplog.text and "mme" not in caplog.text


def test_every_answer_empty_is_a_result_for_a_class_whose_failures_raise(caplog):
    # llava_hf_batched raises on a failed generation: all-empty answers are what the model said
    with caplog.at_level(logging.WARNING, logger="prefalign"):
        check_responses({"prefalign_describe": [{"response": [""]}, {"response": [""]}]}, "llava_hf_batched",
                        failures_raise=True)
    assert "prefalign_describe: 2 of 2 answers are empty" in caplog.text
    from prefalign.lmms_models.llava_hf_batched import LlavaHfBatched
    assert LlavaHfBatched.generation_failures_raise


def test_batched_generation_equals_batch_one_except_near_ties(tiny_model, small_world, tmp_path):
    """llava_hf_batched answers every item as llava_hf (lmms-eval's chat class) does one at a
    time; an answer may differ
    only where the batch-1 run's top two logits at the first differing token are within 1e-4."""
    import json

    import pandas as pd
    import torch
    from lmms_eval.api.task import ConfigurableMessagesTask
    from lmms_eval.models import get_model

    from prefalign.lmms_tasks.utils import doc_to_visual

    model, processor = tiny_model
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    tasks = ["prefalign_pope", "prefalign_vqa", "prefalign_describe"]
    common = dict(model_path=str(tmp_path / "model"), adapter=None, data_dir=small_world / "eval", tasks=tasks,
                  limit=None)
    evaluate_to(tmp_path / "one", **common)
    evaluate_to(tmp_path / "batched", model_name="llava_hf_batched", batch_size=5, **common)

    def answers(folder):
        rows = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
        return {(r["task"], r["id"]): r["response"][0] for r in rows}

    docs = {(t, r["id"]): r for t in tasks
            for r in pd.read_parquet(small_world / "eval" / f"{t.removeprefix('prefalign_')}.parquet")
            .to_dict("records")}
    one, batched = answers(tmp_path / "one"), answers(tmp_path / "batched")
    assert one.keys() == batched.keys() == docs.keys()
    lm = get_model("llava_hf_batched")(pretrained=str(tmp_path / "model"), device="cpu", device_map="cpu",
                                       dtype="float32")
    near_ties = []
    for key in [k for k in one if one[k] != batched[k]]:
        doc = docs[key]
        # the chat messages lmms-eval builds for a task with doc_to_visual and doc_to_text
        inputs = lm.batch_inputs([ConfigurableMessagesTask._build_user_turn(doc_to_visual(doc), doc["question"])])
        out = lm.model.generate(**inputs, do_sample=False, max_new_tokens=80, output_scores=True,
                                return_dict_in_generate=True, pad_token_id=lm.eot_token_id,
                                eos_token_id=lm.eot_token_id)
        alone = out.sequences[0, inputs["input_ids"].shape[1]:].tolist()
        other = lm.tokenizer.encode(batched[key], add_special_tokens=False)
        step = next(i for i, (a, b) in enumerate(zip(alone + [None], other + [None])) if a != b)
        top2 = torch.topk(out.scores[step][0], 2).values
        margin = float(top2[0] - top2[1])
        assert margin < 1e-4, f"{key}: batched answer {batched[key]!r} differs from {one[key]!r} at token " \
                              f"{step}, where the top two logits differ by {margin:.2e}"
        near_ties.append((key, margin))
    print(f"near ties that batching flipped: {near_ties}")
