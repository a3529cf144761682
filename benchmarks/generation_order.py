"""Sampling a prompt set in prompt order against grouped by question
(`prefalign.stages.sample_responses.generation_order`): the same prompts, generation setting
and model, interleaved rounds in one process; prints seconds per round, decoding steps
(each batch decodes until its longest answer ends) and the ratio.

    python benchmarks/generation_order.py [--prompts results/seed1/prompts/seva.jsonl --generation greedy]
"""
import argparse
import json
import time
from pathlib import Path

import torch
import yaml

from prefalign.data import open_record_image, read_prompts, set_world_dir
from prefalign.model import load_model
from prefalign.settings import GenerationSettings
from prefalign.stages.sample_responses import generate_batches, generation_order

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=ROOT / "results")
    ap.add_argument("--prompts", type=Path, default=ROOT / "results/seed1/prompts/seva.jsonl")
    ap.add_argument("--generation", default="greedy", help="a generation setting of config.yaml")
    ap.add_argument("--threads", type=int, default=1, help="as the rule sample_responses asks")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    settings = yaml.safe_load((ROOT / "config.yaml").read_text())["generation"][args.generation]
    gcfg = GenerationSettings.from_partial(settings)
    set_world_dir(args.results / "world")
    model, processor = load_model(str(args.results / "base_model/model"))
    prompts = read_prompts(args.prompts)
    images = [open_record_image(p, args.prompts) for p in prompts]
    questions = [p["question"] for p in prompts]
    # the stage's own loop; one key for every prompt keeps them in prompt order
    keys = {"prompt_order": [""] * len(prompts), "by_question": questions}

    def run(group_by):
        start = time.perf_counter()
        out = generate_batches(model, processor, list(range(len(prompts))), lambda part: [images[i] for i in part],
                               questions, gcfg, 1, "generate", group_by=group_by)
        seconds = round(time.perf_counter() - start, 2)
        order, bs = generation_order(group_by), gcfg.batch_size
        steps = sum(max(n for i in order[s:s + bs] for _, n in out[i]) for s in range(0, len(order), bs))
        return seconds, steps

    seconds, steps = {name: [] for name in keys}, {}
    for _ in range(args.rounds):
        for name, group_by in keys.items():
            t, steps[name] = run(group_by)
            seconds[name].append(t)
    ratio = sum(seconds["prompt_order"]) / sum(seconds["by_question"])
    print(json.dumps({"prompts": len(prompts), "generation": args.generation, "threads": args.threads,
                      "seconds": seconds, "decoding_steps": steps, "prompt_order / by_question": round(ratio, 2)}))


if __name__ == "__main__":
    main()
