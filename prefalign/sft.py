"""Supervised training of the miniature's base VLM on the world's SFT split.

Only the miniature needs this (real runs start from released checkpoints). The decisive
setting lives in config, not here: the language model's `initializer_range` of 0.1 (at 0.02
it stayed at the language prior). This loop adds length-bucketed batches (descriptions are
5x longer than short answers), a one-cycle learning-rate schedule with gradient clipping,
and the loss on answer tokens only. A batch whose lengths spread (a few long descriptions
among short answers) runs as a few forward/backward passes of similar lengths whose gradients
add up to the whole batch's: the same step in less padding.
"""
from __future__ import annotations

import math
import random
import time

import torch
from tqdm import tqdm

from .model import encode_prompts, response_token_ids, token_logps


def encode_sft(processor, conversations, load_image, chunk: int = 512):
    """Every (question, image, answer) turn as (token ids, answer mask, image index), and pixel
    values once per image. Each distinct question's prompt is tokenised once, with one of its
    images (the world's images are all one size, so a prompt's image tokens are too), and each
    distinct answer once: 2145 questions and 4481 answers make the default's 27,281 turns."""
    image_index, images, question_image = {}, [], {}
    for c in conversations:
        if c.image not in image_index:
            image_index[c.image] = len(images)
            images.append(load_image(c))
        for t in c.turns:
            question_image.setdefault(t.question, image_index[c.image])
    pixel_values = processor.image_processor(images, return_tensors="pt")["pixel_values"]
    questions, prompts = list(question_image), {}
    for s in tqdm(range(0, len(questions), chunk), desc="sft: tokenise", leave=False):
        part = questions[s:s + chunk]
        enc = encode_prompts(processor, [images[question_image[q]] for q in part], part, padding_side="left")
        prompts.update((q, ids[m.bool()].tolist()) for q, ids, m in zip(part, enc["input_ids"], enc["attention_mask"]))
    answers, examples = {}, []
    for c in conversations:
        for t in c.turns:
            if t.answer not in answers:
                answers[t.answer] = response_token_ids(processor.tokenizer, t.answer)
            p, r = prompts[t.question], answers[t.answer]
            examples.append((torch.tensor(p + r), torch.tensor([0] * len(p) + [1] * len(r)), image_index[c.image]))
    return examples, pixel_values


def length_bucketed_batches(examples, batch_size: int, rng: random.Random, bucket: int = 16):
    """Shuffle, sort within windows of `bucket` batches by length, then shuffle the batches."""
    order = list(range(len(examples)))
    rng.shuffle(order)
    batches = []
    window = batch_size * bucket
    for s in range(0, len(order), window):
        w = sorted(order[s:s + window], key=lambda i: len(examples[i][0]))
        batches += [w[k:k + batch_size] for k in range(0, len(w), batch_size)]
    rng.shuffle(batches)
    return batches


# What one more forward/backward pass is charged, in padded tokens. On a 2-core Xeon a pass
# costs about 8 ms beyond its tokens (0.02 ms each), i.e. 400 tokens; 400 and 800 ran equally
# fast (1.27x), and 800 cuts fewer batches (docs/notes.md, "Fewer padded tokens").
PASS_COST_TOKENS = 800


def split_by_length(lengths: list[int], pass_cost: int = PASS_COST_TOKENS) -> list[list[int]]:
    """Positions of a batch, sorted by length and cut into runs that minimise padded tokens
    plus `pass_cost` a run (dynamic programming over the cut points)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    n = len(order)
    cost, cut = [0.0] * (n + 1), [n] * (n + 1)
    for i in range(n - 1, -1, -1):
        # a run order[i:j] is padded to its longest, lengths[order[j - 1]]
        cost[i], cut[i] = min((lengths[order[j - 1]] * (j - i) + pass_cost + cost[j], j) for j in range(i + 1, n + 1))
    runs, i = [], 0
    while i < n:
        runs.append(order[i:cut[i]])
        i = cut[i]
    return runs


def collate(examples, idx, pixel_values, pad_id: int) -> dict:
    width = max(len(examples[i][0]) for i in idx)
    ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
    att = torch.zeros((len(idx), width), dtype=torch.long)
    rmask = torch.zeros((len(idx), width), dtype=torch.long)
    for b, i in enumerate(idx):
        x, m, _ = examples[i]
        ids[b, :len(x)], att[b, :len(x)], rmask[b, :len(x)] = x, 1, m
    pv = pixel_values[[examples[i][2] for i in idx]]
    return {"input_ids": ids, "attention_mask": att, "response_mask": rmask, "pixel_values": pv}


def accumulate_gradients(model, examples, idx, pixel_values, pad_id: int,
                         pass_cost: int = PASS_COST_TOKENS) -> torch.Tensor:
    """Backward of one batch's loss in passes of similar lengths (`split_by_length`); returns
    the loss. Each answer's mean token log-prob, averaged over the batch's answers, so that a
    60-token description does not outweigh sixty one-word answers."""
    device = next(model.parameters()).device
    loss = torch.zeros((), device=device)
    for run in split_by_length([len(examples[i][0]) for i in idx], pass_cost):
        batch = {k: v.to(device) for k, v in collate(examples, [idx[r] for r in run], pixel_values, pad_id).items()}
        logps, mask = token_logps(model, batch)
        part = -(logps.sum(-1) / mask.sum(-1)).sum() / len(idx)
        part.backward()
        loss += part.detach()
    return loss


def train_sft(model, processor, examples, pixel_values, *, steps: int, batch_size: int, lr: float,
              weight_decay: float, warmup_frac: float, clip: float, seed: int, log_every: int = 50,
              checkpoint_dir=None, checkpoint_key: str = "", checkpoint_every: int = 0):
    """Train in place; returns a list of per-step log rows. With `checkpoint_dir`, resumes
    from a checkpoint there made for `checkpoint_key` and writes them (`checkpoint.Checkpoints`)."""
    from .checkpoint import Checkpoints, fault_if_injected

    torch.manual_seed(seed)
    rng = random.Random(seed)
    model.train()
    # fused: one kernel over every parameter; the for-loop version took twice as long (5.6 ms
    # of a 68-ms step on a 2-core Xeon, with clipping; docs/notes.md "Fewer padded tokens")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.98), fused=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=warmup_frac, anneal_strategy="cos")
    pad = processor.tokenizer.pad_token_id
    with Checkpoints(checkpoint_dir, checkpoint_key, checkpoint_every, model, opt, sched, name="sft") as checkpoints:
        start, loop = checkpoints.resume()
        loop = loop or {"batches": [], "log": [], "running": None, "seconds": 0.0, "rng": rng.getstate()}
        rng.setstate(loop["rng"])
        t0 = time.time() - loop["seconds"]
        batches, log, running = loop["batches"], loop["log"], loop["running"]
        for step in tqdm(range(start, steps), desc="sft", mininterval=5, initial=start, total=steps):
            fault_if_injected(step)
            if not batches:
                batches = length_bucketed_batches(examples, batch_size, rng)
            opt.zero_grad(set_to_none=True)
            loss = accumulate_gradients(model, examples, batches.pop(), pixel_values, pad)
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            sched.step()
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            if step % log_every == 0 or step == steps - 1:
                log.append({"step": step, "loss": loss.item(), "smoothed_loss": running,
                            "lr": sched.get_last_lr()[0], "seconds": round(time.time() - t0, 2)})
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"sft: loss became {loss.item()} at step {step}")
            checkpoints.after_step(step + 1, steps, {"batches": batches, "log": log, "running": running,
                                                     "seconds": time.time() - t0, "rng": rng.getstate()})
    model.eval()
    return log
