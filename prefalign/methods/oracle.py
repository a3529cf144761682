"""Controls: preference pairs labelled by the miniature's ground truth, not by a method.

The only preference sets allowed to read answers (the world's `pool_answers.json`); every
record says so (`extras.reads_ground_truth`). From the base model's own samples on the
clean image (on-policy), per prompt:
    chosen   = the first sample that is fully correct (correctness 1, `world.correctness`),
               else the ground-truth answer text (counted as `chosen_from_ground_truth`)
    rejected = the least correct sample that is not fully correct (first among ties);
               a prompt whose samples are all correct gives no pair (rejected as `all_correct`)
`labels` turns the pair into the control: `correct` (the positive control, `oracle`),
`reversed` (the same pairs swapped, the negative control) or `random` (the same pairs,
swapped by a coin seeded with the run's seed and the prompt id). `truth` is labelled data,
not a control: every prompt's ground-truth answer as chosen, against its first sample (for
the `sft` objective, which reads the chosen response only: SeVa's continual-SFT baseline).
"""
from __future__ import annotations

import hashlib

from ..io import RecordError, read_json
from ..settings import PreferenceSetSettings
from .records import make_record

NAME = "oracle"
LABELS = ("correct", "reversed", "random", "truth")


def needs(pref_cfg: PreferenceSetSettings) -> list[tuple[str, str]]:
    return [("clean", pref_cfg.generation)]


def coin(seed: int, prompt_id: str) -> bool:
    """A fair coin per (seed, prompt), the same on every machine and rerun."""
    return hashlib.sha256(f"{seed}:{prompt_id}".encode()).digest()[0] & 1 == 1


def oracle_pair(prompt: dict, samples: list[dict], truth: dict) -> tuple[list[list[dict]] | None, bool]:
    """([[chosen], [rejected]] or None when every sample is correct, chosen from ground truth)."""
    from ..scoring import correctness  # the world's module (numpy, PIL): not needed to import the losses

    scored = [(correctness(truth["family"], s["text"], truth["answer"], truth["scene"]), k, s)
              for k, s in enumerate(samples)]
    wrong = [x for x in scored if x[0] < 1]
    if not wrong:
        return None, False
    score, k, sample = min(wrong, key=lambda x: (x[0], x[1]))
    rejected = {**sample, "source": "clean", "sample": k, "correctness": score}
    right = next((x for x in scored if x[0] >= 1), None)
    if right is None:
        chosen = {"text": truth["answer"], "source": "ground_truth", "correctness": 1.0}
    else:
        chosen = {**right[2], "source": "clean", "sample": right[1], "correctness": right[0]}
    return [[chosen], [rejected]], right is None


def build(prompts, responses, pref_cfg: PreferenceSetSettings, resources):
    from ..data import check_world_file

    labels = pref_cfg.labels
    if labels not in LABELS:
        raise ValueError(f"unknown oracle labels {labels!r} (known: {LABELS})")
    answers_path = resources["answers"]
    check_world_file(answers_path)
    answers = read_json(answers_path)
    samples = responses[("clean", pref_cfg.generation)]
    records, from_truth, all_correct, swapped = [], 0, 0, 0
    for p in prompts:
        truth = answers.get(p["id"].split("#")[0])
        if truth is None:
            raise RecordError(answers_path, p["id"], "id", "no ground truth for this prompt")
        if labels == "truth":
            first = samples[p["id"]]["responses"][0]
            pair = [[{"text": truth["answer"], "source": "ground_truth"}], [{**first, "source": "clean", "sample": 0}]]
            records.append(make_record(p, pair, method=NAME, labels=labels, reads_ground_truth=True, swapped=False))
            from_truth += 1
            continue
        pair, chosen_from_truth = oracle_pair(p, samples[p["id"]]["responses"], truth)
        if pair is None:
            all_correct += 1
            continue
        from_truth += chosen_from_truth
        swap = labels == "reversed" or (labels == "random" and coin(resources["seed"], p["id"]))
        swapped += swap
        records.append(make_record(p, pair[::-1] if swap else pair, method=NAME, labels=labels,
                                   reads_ground_truth=True, swapped=swap))
    stats = {"prompts": len(prompts), "kept": len(records), "rejected": {"all_correct": all_correct},
             "chosen_from_ground_truth": from_truth,
             "chosen_from_ground_truth_share": from_truth / max(len(records), 1), "swapped": swapped}
    return records, stats
