"""The base model's SFT step, one padded pass per batch against passes of similar lengths
(`prefalign.sft.split_by_length`), on the same batches of a world's SFT split, interleaved
rounds in one process; prints seconds per round and the ratio.

    python benchmarks/sft_step.py [--world results/world --clip results/clip/world/model]
"""
import argparse
import json
import random
import time
from pathlib import Path

import torch
import yaml

from prefalign.data import load_conversations, open_image
from prefalign.sft import PASS_COST_TOKENS, accumulate_gradients, encode_sft, length_bucketed_batches
from prefalign.stages.train_base_model import world_corpus
from prefalign.tiny_vlm import build_tiny_llava

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--world", type=Path, default=ROOT / "results/world")
    ap.add_argument("--clip", type=Path, default=ROOT / "results/clip/world/model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--batches", type=int, default=60, help="batches a round")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    base = cfg["base_model"]
    model, processor = build_tiny_llava(world_corpus(args.world), cfg["world"]["image_size"],
                                        base["tiny"]["patch_size"], None, base["tiny"]["text"], 0, args.clip)
    sft_path = args.world / "sft.json"
    convs = load_conversations(sft_path, require_answers=True)
    examples, pixel_values = encode_sft(processor, convs, lambda c: open_image(args.world, c.image, sft_path, c.id))
    batches = length_bucketed_batches(examples, base["sft"]["batch_size"], random.Random(0))
    pad = processor.tokenizer.pad_token_id
    ways = {"one_pass": 10**12, "split": PASS_COST_TOKENS}

    def round_seconds(pass_cost, chosen):
        start = time.perf_counter()
        for idx in chosen:
            model.zero_grad(set_to_none=True)
            accumulate_gradients(model, examples, idx, pixel_values, pad, pass_cost)
        return time.perf_counter() - start

    for pass_cost in ways.values():  # warm-up
        round_seconds(pass_cost, batches[:5])
    seconds = {name: [] for name in ways}
    for r in range(args.rounds):
        chosen = batches[5 + r * args.batches:5 + (r + 1) * args.batches]
        for name, pass_cost in ways.items():
            seconds[name].append(round(round_seconds(pass_cost, chosen), 2))
    print(json.dumps({"batches_per_round": args.batches, "threads": args.threads, "seconds": seconds,
                      "one_pass / split": round(sum(seconds["one_pass"]) / sum(seconds["split"]), 2)}))


if __name__ == "__main__":
    main()
