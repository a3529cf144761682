"""ConSR's contrastive scoring: shared-prefix passes vs naive full-sequence scoring.

    python benchmarks/consr_scoring.py [--model results/base_model/model] [--prompts 16] [--candidates 15]

Per prompt, 15 candidates are scored under ConSR's three inputs: (x, I), (description + x,
I) and (x, noise-800 I). The shared scorer (`prefalign.methods.consr.score_candidates`, the
code build_preferences runs) encodes each condition's image and prompt once per prompt and
reuses its KV cache for all candidates; the naive one scores every (condition, candidate)
as its own sequence, batched the same way. Both run side by side in one process on the
same inputs; times are medians over repeats (no grad: scoring happens once, with the base
model). The last column is the largest difference in mean token log-prob between the two.

Without --model a random-weight tiny LLaVA with the default config's architecture is built
(timing does not depend on the weights). Prompts are the world's plain questions with
candidates drawn from the SFT answers of the same family, descriptions are the world's.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from group_scoring import build_model, timed

from prefalign import world as W
from prefalign.world_build import build_world
from prefalign.augment import AugmentSpec, View
from prefalign.data import load_conversations, open_image
from prefalign.methods.consr import score_candidates
from prefalign.model import build_scoring_batch, token_logps


def make_inputs(world_dir, n_prompts, n_candidates, rng):
    convs = load_conversations(Path(world_dir) / "sft.json", require_answers=True)
    plain = [(c, t) for c in convs for t in c.turns
             if not t.question.startswith(("revise", "For your")) and W.REASONING_PROMPT not in t.question]
    descriptions = {c.id: t.answer for c in convs for t in c.turns if t.question == W.DESCRIBE_QUESTION}
    picks = rng.choice(len(plain), n_prompts, replace=False)
    prompts = [{"id": plain[i][0].id, "question": plain[i][1].question} for i in picks]
    images = [open_image(world_dir, plain[i][0].image, "sft.json", plain[i][0].id) for i in picks]
    candidates = [[{"text": plain[int(rng.integers(len(plain)))][1].answer} for _ in range(n_candidates)]
                  for _ in picks]
    return prompts, images, candidates, {p["id"]: descriptions[p["id"]] for p in prompts}


def naive_mean_logps(model, processor, prompts, images, candidates, descriptions, view, batch_size=64):
    """Mean token log-prob of every (condition, candidate), each scored as a whole sequence."""
    out = []
    for cond in ("clean", "semantic", "corrupt"):
        rows = []
        for p, im, cs in zip(prompts, images, candidates):
            q = p["question"]
            if cond == "semantic":
                q = W.CONTEXT_TEMPLATE.format(description=descriptions[p["id"]], prompt=q)
            rows += [(p["id"], im, q, c["text"]) for c in cs]
        for s in range(0, len(rows), batch_size):
            ids, ims, qs, texts = map(list, zip(*rows[s:s + batch_size]))
            if cond == "corrupt":
                ims = view.images(ims, ids)
            transform = view.pixel_transform(ids) if cond == "corrupt" else None
            logps, mask = token_logps(model, build_scoring_batch(processor, ims, qs, texts, transform))
            out.append(logps.sum(-1) / mask.sum(-1))
    return torch.cat(out)


def shared_mean_logps(model, processor, prompts, images, candidates, descriptions, view):
    scored = score_candidates(model, processor, prompts, images, candidates, descriptions, view, W.CONTEXT_TEMPLATE)
    means = {k: [] for k in ("p", "p_semantic", "p_corrupt")}
    for scores, _ in scored:
        for s in scores:
            for k in means:
                means[k].append(s[k])
    return torch.log(torch.tensor(means["p"] + means["p_semantic"] + means["p_corrupt"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--prompts", type=int, default=16, help="prompts per batch (build_preferences uses 16)")
    ap.add_argument("--candidates", type=int, nargs="+", default=[5, 15])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    view = View(AugmentSpec("noise800", "diffusion", 800), seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        world_dir = Path(tmp) / "world"
        build_world(world_dir, 0, W.WorldSpec(), 400, 10, {"pope": 3, "vqa": 1, "describe": 1},
                      consr_share=0.25, progress=False)
        model, processor = build_model(world_dir, args.model)
        model.eval()
        print("| candidates/prompt | sequences scored | naive ms | shared-prefix ms | ratio | "
              "max abs diff of mean log-probs |")
        print("|---|---|---|---|---|---|")
        for n in args.candidates:
            inputs = (model, processor, *make_inputs(world_dir, args.prompts, n, np.random.default_rng(n)), view)
            with torch.no_grad():
                diff = (naive_mean_logps(*inputs) - shared_mean_logps(*inputs)).abs().max()
            timed(lambda inputs=inputs: naive_mean_logps(*inputs), False, 1)  # warm-up
            timed(lambda inputs=inputs: shared_mean_logps(*inputs), False, 1)
            t_naive = timed(lambda inputs=inputs: naive_mean_logps(*inputs), False, args.repeats)
            t_shared = timed(lambda inputs=inputs: shared_mean_logps(*inputs), False, args.repeats)
            print(f"| {n} | {3 * n * args.prompts} | {1000 * t_naive:.1f} | {1000 * t_shared:.1f} | "
                  f"{t_naive / t_shared:.2f}x | {diff.item():.1e} |")


if __name__ == "__main__":
    main()
