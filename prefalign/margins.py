"""Held-out preference margin: does a trained model prefer the true answer to the base model's
wrong one on evaluation items it never trained on?

On every POPE and VQA item the base model answered wrongly (its answer read from its
evaluation folder), margin = log p(true answer) - log p(base model's answer) under the
model, teacher-forced. Preference training on correct labels must raise it and reversed
labels lower it, whatever it does to greedy answers: on the miniature, DPO lowers the
likelihood of both answers, so the benchmarks can fall while this margin rises.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import torch
from PIL import Image

from .model import build_scoring_batch, load_model, sequence_logps

TASKS = {"prefalign_pope": "pope", "prefalign_vqa": "vqa"}


def base_errors(world_dir, base_eval_dir) -> list[dict]:
    """The evaluation items the base model answered wrongly (with a non-empty answer)."""
    wrong = {}
    for line in (Path(base_eval_dir) / "samples.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["task"] in TASKS and row["score"] == 0 and row["response"][0].strip():
            wrong[row["id"]] = row["response"][0]
    items = []
    for name in TASKS.values():
        for row in pd.read_parquet(Path(world_dir) / "eval" / f"{name}.parquet").to_dict("records"):
            if row["id"] in wrong:
                items.append({**row, "base_answer": wrong[row["id"]]})
    return items


@torch.no_grad()
def heldout_margin(model_dir, adapter, items: list[dict], batch_size: int = 64) -> float:
    """Mean over items of log p(true answer) - log p(base model's answer) (nats)."""
    model, processor = load_model(str(model_dir), adapter=str(adapter) if adapter else None)
    model.eval()
    margins = []
    for s in range(0, len(items), batch_size):
        part = items[s:s + batch_size]
        images = [Image.open(io.BytesIO(r["image"])).convert("RGB") for r in part]
        questions = [r["question"] for r in part]
        true = sequence_logps(model, build_scoring_batch(processor, images, questions, [r["answer"] for r in part]))
        base = sequence_logps(model, build_scoring_batch(processor, images, questions,
                                                         [r["base_answer"] for r in part]))
        margins += (true - base).tolist()
    return float(sum(margins) / len(margins))
