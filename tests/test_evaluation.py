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
