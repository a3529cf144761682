"""Scoring a response against the miniature's ground truth: exact match for short answers,
CHAIR-style counts for descriptions, and the correctness score that label accuracy uses."""
from __future__ import annotations

import re

from .world import COLOURS, SHAPES, present_objects

# A colour-shape mention; "no red circle" is a negation, not a claim that one is present.
_MENTION = re.compile(r"(?<!\bno )\b(" + "|".join(COLOURS) + r") (" + "|".join(SHAPES) + r")s?\b")


def normalise_answer(text: str) -> str:
    text = text.lower().strip()
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


def short_answer_correct(prediction: str, answer: str) -> bool:
    """Exact match after normalisation, as VQA-style benchmarks score short answers."""
    return normalise_answer(prediction) == normalise_answer(answer)


def yes_no(prediction: str) -> str | None:
    words = normalise_answer(prediction).split()
    return words[0] if words and words[0] in ("yes", "no") else None


def mentioned_objects(text: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in _MENTION.finditer(text.lower())]


def hallucination_stats(text: str, scene: dict) -> dict:
    """CHAIR-style counts: mentioned objects absent from the scene, and recall of the scene."""
    mentions = mentioned_objects(text)
    present = present_objects(scene)
    hallucinated = [m for m in mentions if m not in present]
    return {"mentions": len(mentions), "hallucinated": len(hallucinated),
            "recalled": len(set(mentions) & present), "objects": len(present)}


def correctness(family: str, prediction: str, answer: str, scene: dict | None = None) -> float:
    """A score in [0, 1] saying how correct a response is; used for label accuracy.

    Descriptions score recall * (1 - hallucination rate) against the scene graph. Short
    answers score exact match of the first sentence; an explanation after it (the
    reasoning prompt's answers) multiplies that by (1 - its hallucination rate)."""
    if family == "describe":
        if scene is None:
            raise ValueError("describe answers need the scene graph")
        st = hallucination_stats(prediction, scene)
        if st["mentions"] == 0:
            return 0.0
        return (st["recalled"] / max(st["objects"], 1)) * (1 - st["hallucinated"] / st["mentions"])
    head, _, evidence = prediction.partition(".")
    score = float(yes_no(head) == answer) if family == "exist" else float(short_answer_correct(head, answer))
    if evidence.strip() and scene is not None:
        st = hallucination_stats(evidence, scene)
        if st["mentions"]:
            score *= 1 - st["hallucinated"] / st["mentions"]
    return score
