"""Batched evaluation: lmms-eval with `llava_hf_batched` vs lmms-eval's `llava_hf` (batch 1).

    python benchmarks/evaluation.py [--model results/base_model/model] [--world results/world]
                                    [--limit 200] [--batch-size 64]

Both run side by side in one process through the code the evaluate stage runs
(`prefalign.evaluation.run_lmms_eval`), on the same items of each miniature benchmark (the
first `--limit` of each task), after one warm-up call that pays for the imports. `gen s` is
the time spent in the model class's `generate_until` (what batching speeds up), `call s` the
whole call (model loading, task set-up and scoring included); the ratio is of generation
items/s. The last column counts items whose answers differ (greedy decoding: only near-ties
flipped by the padded batch's rounding may differ).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from prefalign.evaluation import run_lmms_eval, write_task_dir

TASKS = ["prefalign_pope", "prefalign_vqa", "prefalign_describe"]


def answers(samples: dict) -> dict:
    return {(task, row["id"]): row["response"] for task, rows in samples.items() for row in rows}


def timed_generation(model_class, spent: list) -> None:
    """Wrap the class's own generate_until so the time spent in it adds to spent[0]."""
    original = model_class.__dict__["generate_until"]

    def generate_until(self, requests):
        start = time.perf_counter()
        try:
            return original(self, requests)
        finally:
            spent[0] += time.perf_counter() - start
    model_class.generate_until = generate_until


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="results/base_model/model")
    parser.add_argument("--world", default="results/world")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    from lmms_eval.models import get_model

    classes = {"one": ("llava_hf", 1), "batched": ("llava_hf_batched", args.batch_size)}
    spent = {name: [0.0] for name in classes}
    for name, (model_name, _) in classes.items():
        timed_generation(get_model(model_name), spent[name])
    with tempfile.TemporaryDirectory() as tmp:
        task_dir = write_task_dir(Path(tmp) / "tasks", Path(args.world) / "eval")
        run_lmms_eval(args.model, None, TASKS[:1], task_dir, limit=1)  # imports, dataset caches
        print(f"batch size {args.batch_size}, {torch.get_num_threads()} threads")
        print(f"{'task':<20} {'items':>5} {'gen s 1':>8} {'gen s B':>8} {'items/s 1':>9} {'items/s B':>9} "
              f"{'ratio':>6} {'call s 1':>8} {'call s B':>8} {'differ':>6}")
        total = {"items": 0, "gen": {n: 0.0 for n in classes}, "call": {n: 0.0 for n in classes}}
        for task in TASKS:
            gen, call, outputs = {}, {}, {}
            for name, (model_name, batch_size) in classes.items():
                spent[name][0], start = 0.0, time.perf_counter()
                _, samples = run_lmms_eval(args.model, None, [task], task_dir, limit=args.limit,
                                           model_name=model_name, batch_size=batch_size)
                call[name], gen[name], outputs[name] = time.perf_counter() - start, spent[name][0], answers(samples)
                total["gen"][name] += gen[name]
                total["call"][name] += call[name]
            items = len(outputs["one"])
            total["items"] += items
            differ = sum(outputs["one"][k] != outputs["batched"].get(k) for k in outputs["one"])
            print(f"{task:<20} {items:>5} {gen['one']:>8.2f} {gen['batched']:>8.2f} {items / gen['one']:>9.1f} "
                  f"{items / gen['batched']:>9.1f} {gen['one'] / gen['batched']:>6.1f} {call['one']:>8.1f} "
                  f"{call['batched']:>8.1f} {differ:>6}")
        g, c, n = total["gen"], total["call"], total["items"]
        print(f"{'all':<20} {n:>5} {g['one']:>8.2f} {g['batched']:>8.2f} {n / g['one']:>9.1f} "
              f"{n / g['batched']:>9.1f} {g['one'] / g['batched']:>6.1f} {c['one']:>8.1f} {c['batched']:>8.1f}")


if __name__ == "__main__":
    main()
