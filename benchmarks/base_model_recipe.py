"""SFT recipes of the miniature's base model, side by side in one run: each recipe trains a
fresh tiny LLaVA on a world's SFT split and prints its seconds and its clean accuracy per
question family on the full evaluation sets (the stage's own `competence`).

    python benchmarks/base_model_recipe.py --world results/world --clip results/clip/world/model \\
        --recipe scratch:2000 --recipe clip:2000 --recipe clip:3000 [--recipe clip:4000:32:1.5e-3]
    python benchmarks/base_model_recipe.py --seed 2 --clip results/base_seeds/seed2/clip/world/model \\
        --recipe clip:6000 --device cuda     # another base seed (its own CLIP), on a GPU
    python benchmarks/base_model_recipe.py --recipe clip:6000 --text hidden_size=96 \\
        --text intermediate_size=192         # a smaller language model, the rest config.yaml's

A recipe is INIT:STEPS[:BATCH[:LR]]; INIT is `scratch` (random weights, the vision tower the
default had before, SCRATCH_VISION) or
`clip` (the world CLIP's image encoder, `base_model.tiny.vision_from`); the rest of the SFT
settings and the language model are config.yaml's.
"""
import argparse
import json
import time
from pathlib import Path

import torch
import yaml

from prefalign.data import load_conversations, open_image
from prefalign.sft import encode_sft, train_sft
from prefalign.stages.train_base_model import competence, world_corpus
from prefalign.tiny_vlm import build_tiny_llava

ROOT = Path(__file__).resolve().parents[1]
# The vision tower the default trained from random weights before it started from the CLIP.
SCRATCH_VISION = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}


def run(recipe: str, world: Path, clip: Path, base: dict, image_size: int, seed: int, device: str) -> dict:
    init, steps, *rest = recipe.split(":")
    sft = {**base["sft"], "steps": int(steps), "seed": seed}
    if rest:
        sft["batch_size"] = int(rest[0])
    if len(rest) > 1:
        sft["lr"] = float(rest[1])
    tiny = base["tiny"]
    model, processor = build_tiny_llava(world_corpus(world), image_size, tiny["patch_size"], SCRATCH_VISION,
                                        tiny["text"], sft["seed"], clip if init == "clip" else None)
    model.to(device)
    sft_path = world / "sft.json"
    convs = load_conversations(sft_path, require_answers=True)
    examples, pixel_values = encode_sft(processor, convs, lambda c: open_image(world, c.image, sft_path, c.id))
    start = time.perf_counter()
    train_sft(model, processor, examples, pixel_values, steps=sft["steps"], batch_size=sft["batch_size"],
              lr=sft["lr"], weight_decay=sft["weight_decay"], warmup_frac=sft["warmup_frac"],
              clip=sft["clip"], seed=sft["seed"])
    seconds = time.perf_counter() - start
    rows = competence(model, processor, world, [], sft["seed"])
    return {"recipe": recipe, "language_model": tiny["text"], "seed": seed, "sft_seconds": round(seconds),
            **{r["family"]: round(100 * r["accuracy"], 1) for r in rows}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--world", type=Path, default=ROOT / "results/world")
    ap.add_argument("--clip", type=Path, default=ROOT / "results/clip/world/model")
    ap.add_argument("--recipe", action="append", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=None, help="the SFT seed (default: config.yaml's); "
                    "pass the CLIP of the same base seed with --clip, as base_seeds does")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--text", action="append", default=[], metavar="KEY=VALUE",
                    help="a setting of the language model (base_model.tiny.text) for every recipe")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    seed = cfg["base_model"]["sft"]["seed"] if args.seed is None else args.seed
    text = cfg["base_model"]["tiny"]["text"]
    for setting in args.text:
        key, _, value = setting.partition("=")
        if key not in text:
            ap.error(f"--text {setting}: base_model.tiny.text has no {key!r} (it has {sorted(text)})")
        text[key] = yaml.safe_load(value)
    for recipe in args.recipe:
        print(json.dumps(run(recipe, args.world, args.clip, cfg["base_model"], cfg["world"]["image_size"],
                             seed, args.device)), flush=True)


if __name__ == "__main__":
    main()
