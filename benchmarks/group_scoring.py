"""Shared-prefix scoring vs naive full-sequence scoring of N responses per item.

    python benchmarks/group_scoring.py [--model results/base_model/model] [--items 16]

Both scorers run side by side in one process on the same batch: the naive one scores each
(image, prompt, response) as its own sequence; the shared one encodes each item's image and
prompt once and reuses its KV cache for all N responses. Times are medians over repeats,
for the reference pass (no grad) and the policy pass (forward + backward), and the script
prints the largest difference between the two scorers' summed log-probs.

Without --model it builds a random-weight tiny LLaVA with the default config's architecture
(timing does not depend on the weights). Prompts carry SMPRO's reasoning prompt and the
responses are the world's reasoning answers, so lengths are those of the miniature's SMPRO run.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from prefalign import world as W
from prefalign.world_build import build_world
from prefalign.data import load_conversations, open_image
from prefalign.model import (build_scoring_batch, group_scoring_batch, shared_prefix_token_logps,
                             token_logps)

ROOT = Path(__file__).resolve().parents[1]


def build_model(world_dir, model_path):
    if model_path:
        from prefalign.model import load_model
        return load_model(model_path)
    from prefalign.stages.train_base_model import world_corpus
    from prefalign.tiny_vlm import build_tiny_llava

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    tiny = cfg["base_model"]["tiny"]
    return build_tiny_llava(world_corpus(world_dir), cfg["world"]["image_size"], tiny["patch_size"],
                            tiny["vision"], tiny["text"], 0)


def make_batch(world_dir, n_items, n_responses, rng):
    convs = load_conversations(Path(world_dir) / "sft.json", require_answers=True)
    reasoning = [t for c in convs for t in c.turns if W.REASONING_PROMPT in t.question]
    picks = rng.choice(len(convs), n_items, replace=False)
    images = [open_image(world_dir, convs[i].image, "sft.json", convs[i].id) for i in picks]
    questions = [reasoning[int(rng.integers(len(reasoning)))].question for _ in picks]
    responses = [[reasoning[int(rng.integers(len(reasoning)))].answer for _ in range(n_responses)] for _ in picks]
    return images, questions, responses


def naive_logps(model, processor, images, questions, responses):
    flat = [(im, q, r) for im, q, rs in zip(images, questions, responses) for r in rs]
    batch = build_scoring_batch(processor, *map(list, zip(*flat)))
    logps, _ = token_logps(model, batch)
    return logps.sum(-1)


def shared_logps(model, processor, images, questions, responses):
    logps, _ = shared_prefix_token_logps(model, group_scoring_batch(processor, images, questions, responses))
    return logps.sum(-1)


def timed(fn, grad: bool, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        if grad:
            fn().sum().backward()
        else:
            with torch.no_grad():
                fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--items", type=int, default=16, help="items per batch (the training batch size)")
    ap.add_argument("--responses", type=int, nargs="+", default=[2, 9, 15])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        world_dir = Path(tmp) / "world"
        build_world(world_dir, 0, W.WorldSpec(), 400, 10, {"pope": 3, "vqa": 1, "describe": 1}, progress=False)
        model, processor = build_model(world_dir, args.model)
        model.train()  # as in training; no dropout in the tiny model
        print("| responses/item | pass | naive ms | shared-prefix ms | ratio | max abs diff of log-probs |")
        print("|---|---|---|---|---|---|")
        for n in args.responses:
            batch = make_batch(world_dir, args.items, n, np.random.default_rng(n))
            with torch.no_grad():
                diff = (naive_logps(model, processor, *batch) - shared_logps(model, processor, *batch)).abs().max()
            for grad, label in ((False, "reference (no grad)"), (True, "policy (fwd+bwd)")):
                timed(lambda: naive_logps(model, processor, *batch), grad, 1)  # warm-up
                timed(lambda: shared_logps(model, processor, *batch), grad, 1)
                t_naive = timed(lambda: naive_logps(model, processor, *batch), grad, args.repeats)
                t_shared = timed(lambda: shared_logps(model, processor, *batch), grad, args.repeats)
                print(f"| {n} | {label} | {1000 * t_naive:.1f} | {1000 * t_shared:.1f} | "
                      f"{t_naive / t_shared:.2f}x | {diff.item():.1e} |")
                model.zero_grad(set_to_none=True)


if __name__ == "__main__":
    main()
