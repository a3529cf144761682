"""lmms-eval hooks for the miniature's benchmarks (loaded via `!function utils.<name>`).

Scoring is exact, against the world's ground truth: POPE-style yes/no, short-answer exact
match, and CHAIR-style object hallucination of descriptions against the scene graph."""
import io
import json

from PIL import Image

from prefalign.scoring import hallucination_stats, short_answer_correct, yes_no


def doc_to_visual(doc):
    return [Image.open(io.BytesIO(doc["image"])).convert("RGB")]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return doc["question"]


def pope_process_results(doc, results):
    pred = yes_no(results[0])
    row = {"id": doc["id"], "prediction": pred or "other", "answer": doc["answer"],
           "pope_type": doc["pope_type"], "score": float(pred == doc["answer"])}
    return {"pope_accuracy": row, "pope_f1": row, "pope_yes_ratio": row}


def pope_accuracy(rows):
    return sum(r["score"] for r in rows) / len(rows)


def pope_f1(rows):
    tp = sum(r["prediction"] == "yes" and r["answer"] == "yes" for r in rows)
    fp = sum(r["prediction"] == "yes" and r["answer"] == "no" for r in rows)
    fn = sum(r["prediction"] != "yes" and r["answer"] == "yes" for r in rows)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def pope_yes_ratio(rows):
    return sum(r["prediction"] == "yes" for r in rows) / len(rows)


def vqa_process_results(doc, results):
    return {"exact_match": {"id": doc["id"], "family": doc["family"],
                            "score": float(short_answer_correct(results[0], doc["answer"]))}}


def mean_score(rows):
    return sum(r["score"] for r in rows) / len(rows)


def describe_process_results(doc, results):
    st = hallucination_stats(results[0], json.loads(doc["scene"]))
    row = {"id": doc["id"], **st}
    return {"chair_i": row, "chair_s": row, "object_recall": row}


def chair_i(rows):
    """Share of mentioned objects that are not in the scene (lower is better)."""
    mentions = sum(r["mentions"] for r in rows)
    return sum(r["hallucinated"] for r in rows) / mentions if mentions else 0.0


def chair_s(rows):
    """Share of descriptions with at least one hallucinated object (lower is better)."""
    return sum(r["hallucinated"] > 0 for r in rows) / len(rows)


def object_recall(rows):
    return sum(r["recalled"] for r in rows) / max(1, sum(r["objects"] for r in rows))
