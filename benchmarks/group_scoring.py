"""Shared-prefix scoring vs naive full-sequence scoring of N responses per item, and vs TRL.

    python benchmarks/group_scoring.py [--model results/base_model/model] [--items 16]
    python benchmarks/group_scoring.py --arch llava-1.5-7b --trl   # 576 image tokens, TRL beside

With --arch NAME the model is the shape-faithful one of a real base model (prefalign.shapes:
real image geometry and head layout, reduced depth and width) and the images are 640 x 480,
so prompts carry the real image token counts (LLaVA-1.5 576, OneVision 2,929, Qwen2.5-VL 391).
With --trl (needs `make bench-venv`: TRL is a locked optional extra) each 2-response row also
times TRL's own DPOTrainer code path on the same items, chosen = the first response and
rejected = the second: its vision-preference collator, `compute_ref_log_probs` for the
reference pass and `_compute_loss` (with the reference log-probs precomputed) plus backward
for the policy pass, gradient checkpointing off as in this project.

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
from prefalign.model import (build_scoring_batch, encode_prompts, group_scoring_batch, shared_prefix_token_logps,
                             token_logps)

ROOT = Path(__file__).resolve().parents[1]


def build_model(world_dir, model_path, arch=None):
    if model_path:
        from prefalign.model import load_model
        return load_model(model_path)
    if arch:
        import sys

        sys.path.insert(0, str(ROOT / "tests"))
        from tiny_real_models import shape_faithful
        from prefalign.stages.train_base_model import world_corpus

        return shape_faithful(arch, world_corpus(world_dir))
    from prefalign.stages.train_base_model import world_corpus
    from prefalign.tiny_vlm import build_tiny_llava, clip_vision_config

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    tiny = cfg["base_model"]["tiny"]
    vision = tiny.get("vision") or clip_vision_config(  # random weights in the CLIP's shape
        cfg["clip_models"][tiny["vision_from"]]["architecture"]["vision"])
    return build_tiny_llava(world_corpus(world_dir), cfg["world"]["image_size"], tiny["patch_size"],
                            vision, tiny["text"], 0)


def make_batch(world_dir, n_items, n_responses, rng, image_size=None):
    convs = load_conversations(Path(world_dir) / "sft.json", require_answers=True)
    reasoning = [t for c in convs for t in c.turns if W.REASONING_PROMPT in t.question]
    picks = rng.choice(len(convs), n_items, replace=False)
    images = [open_image(world_dir, convs[i].image, "sft.json", convs[i].id) for i in picks]
    images = [im.resize(image_size) for im in images] if image_size else images
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


def trl_passes(model, processor, folder):
    """(reference, policy) functions of a batch through TRL's DPOTrainer with this model: its
    collator, `compute_ref_log_probs`, and `_compute_loss` with precomputed reference log-probs."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from prefalign.model import load_model

    model.save_pretrained(folder)  # TRL reads the model's config by its name or path
    processor.save_pretrained(folder)
    model, processor = load_model(str(folder))
    model.train()

    def examples(images, questions, responses):
        return [{"images": [im],
                 "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q}]}],
                 "chosen": [{"role": "assistant", "content": [{"type": "text", "text": rs[0]}]}],
                 "rejected": [{"role": "assistant", "content": [{"type": "text", "text": rs[1]}]}]}
                for im, q, rs in zip(images, questions, responses)]

    args = DPOConfig(output_dir=str(folder / "trl"), report_to=[], use_cpu=True, gradient_checkpointing=False,
                     precompute_ref_log_probs=False, max_length=None)
    trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(examples(*make_dummy())),
                         processing_class=processor)

    def reference(*batch):
        return torch.cat(trainer.compute_ref_log_probs(trainer.model, trainer.data_collator(examples(*batch))))

    def policy(*batch):
        inputs = trainer.data_collator(examples(*batch))
        n = len(batch[0])
        inputs["ref_chosen_logps"], inputs["ref_rejected_logps"] = torch.zeros(n), torch.zeros(n)
        trainer.precompute_ref_logps = True  # the reference comes from the inputs, as with a stored set
        return trainer._compute_loss(trainer.model, inputs, return_outputs=False)

    return reference, policy


def make_dummy():
    from PIL import Image

    return [Image.new("RGB", (32, 32))], ["what colour?"], [["red", "blue"]]


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
    ap.add_argument("--arch", choices=["llava-1.5-7b", "llava-onevision-0.5b", "llava-onevision-7b", "qwen2.5-vl-7b"],
                    help="the shape-faithful model of a real base model, at its real image geometry")
    ap.add_argument("--trl", action="store_true", help="also TRL's DPOTrainer path on the 2-response rows")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        world_dir = Path(tmp) / "world"
        build_world(world_dir, 0, W.WorldSpec(), 400, 10, {"pope": 3, "vqa": 1, "describe": 1}, progress=False)
        model, processor = build_model(world_dir, args.model, args.arch)
        model.train()  # as in training; no dropout in the tiny model
        trl = trl_passes(model, processor, Path(tmp) / "trl_model") if args.trl else None
        image_size = (640, 480) if args.arch else None
        images, questions, _ = make_batch(world_dir, 1, 1, np.random.default_rng(0), image_size)
        ids = encode_prompts(processor, images, questions)["input_ids"]
        image_token = processor.tokenizer.convert_tokens_to_ids(processor.image_token)
        print(f"model: {args.arch or args.model or 'tiny LLaVA (config.yaml)'}, "
              f"{int((ids == image_token).sum())} image tokens in a prompt of {ids.shape[1]}\n")
        print("| responses/item | pass | naive ms | shared-prefix ms | naive / shared | TRL ms | TRL / shared "
              "| max abs diff of log-probs |")
        print("|---|---|---|---|---|---|---|---|")
        for n in args.responses:
            batch = make_batch(world_dir, args.items, n, np.random.default_rng(n), image_size)
            with torch.no_grad():
                diff = (naive_logps(model, processor, *batch) - shared_logps(model, processor, *batch)).abs().max()
            for grad, label in ((False, "reference (no grad)"), (True, "policy (fwd+bwd)")):
                timed(lambda: naive_logps(model, processor, *batch), grad, 1)  # warm-up
                timed(lambda: shared_logps(model, processor, *batch), grad, 1)
                t_naive = timed(lambda: naive_logps(model, processor, *batch), grad, args.repeats)
                t_shared = timed(lambda: shared_logps(model, processor, *batch), grad, args.repeats)
                trl_cells = "- | -"
                if trl and n == 2:
                    fn = trl[1] if grad else trl[0]
                    timed(lambda: fn(*batch), grad, 1)
                    t_trl = timed(lambda: fn(*batch), grad, args.repeats)
                    trl_cells = f"{1000 * t_trl:.1f} | {t_trl / t_shared:.2f}x"
                print(f"| {n} | {label} | {1000 * t_naive:.1f} | {1000 * t_shared:.1f} | "
                      f"{t_naive / t_shared:.2f}x | {trl_cells} | {diff.item():.1e} |")
                model.zero_grad(set_to_none=True)


if __name__ == "__main__":
    main()
