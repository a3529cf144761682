"""LoRA preference training, independent of what the loss means.

The loop scores the responses an objective selects under the policy (adapter on) and the
reference (the same weights with the adapter disabled), hands the summed response
log-probs to the objective's loss, and logs its metrics.
"""
from __future__ import annotations

import logging
import math
import os
import random

import torch
from tqdm import tqdm

from . import distributed, reference
from .checkpoint import Checkpoints, fault_if_injected
from .methods.records import Objective
from .methods.sft import chosen_nll
from .model import group_scoring_batch, shared_prefix_token_logps
from .settings import LoraSettings, ObjectiveSettings, TrainingSettings
from .shapes import LLM_LINEAR_TARGETS  # the vision tower and projector stay frozen

log = logging.getLogger(__name__)


def add_lora(model, lora_cfg: LoraSettings):
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=lora_cfg.r, lora_alpha=lora_cfg.alpha,
                     lora_dropout=lora_cfg.dropout,
                     target_modules=lora_cfg.target_modules or LLM_LINEAR_TARGETS,
                     bias="none")
    return get_peft_model(model, cfg)


def cosine_with_warmup(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def score_groups(model, processor, items, groups, images, device) -> dict:
    """Log-probs of every selected response, policy and reference: summed [B, Nmax] and per
    token [B, Nmax, T], with the records themselves (for per-response extras such as units).

    Each item's image and prompt are encoded once and shared by all of its responses. The
    reference's come from the records where they carry them (`reference.attach`: computed
    once per preference set), else from a pass with the adapter disabled."""
    texts = [[r["text"] for g in gs for r in g] for gs in groups]
    batch = group_scoring_batch(processor, images, [r["question"] for r in items], texts)
    # under FSDP every process must make the same number of passes: one chunk, whatever the size
    chunks = 1 if distributed.is_sharded(model) else 3
    policy_tok, mask = shared_prefix_token_logps(model, batch, chunks)
    if all(reference.KEY in r for r in items):
        ref_tok = reference.selected(items, groups, mask.shape[-1], mask)
    else:
        with torch.no_grad(), model.disable_adapter():
            ref_tok, _ = shared_prefix_token_logps(model, batch, chunks)
    counts = [len(t) for t in texts]
    policy, ref, mask = (pad_per_item(x, counts) for x in (policy_tok, ref_tok, mask))
    return {"policy": policy.sum(-1), "ref": ref.sum(-1), "policy_tokens": policy, "ref_tokens": ref,
            "token_mask": mask, "group_sizes": [tuple(len(g) for g in gs) for gs in groups], "records": items}


def pad_per_item(x: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """[M, ...] rows, counts[b] of them per item -> [B, max(counts), ...], zero-padded."""
    width = max(counts)
    return torch.stack([torch.cat([r, r.new_zeros((width - len(r), *r.shape[1:]))]) for r in torch.split(x, counts)])


def score_corrupt(model, processor, items, groups, images, sharded: bool) -> torch.Tensor:
    """The policy's token log-probs [B, Nmax, T] of the selected responses, without gradient,
    with each record's corrupt image (ConSR's Eq. 12 with p_theta)."""
    from .methods.consr import corrupt_view

    views = [corrupt_view(r) for r in items]
    if any((v.spec, v.seed) != (views[0].spec, views[0].seed) for v in views):
        raise ValueError("train: the records of one batch name different corrupt augmentations")
    ids = [r["id"] for r in items]
    texts = [[r["text"] for g in gs for r in g] for gs in groups]
    batch = group_scoring_batch(processor, views[0].images(images, ids), [r["question"] for r in items], texts,
                                views[0].pixel_transform(ids))
    with torch.no_grad():
        tokens, _ = shared_prefix_token_logps(model, batch, 1 if sharded else 3)
    return pad_per_item(tokens, [len(t) for t in texts])


def pair_metrics(scored: dict, beta: float | None) -> dict:
    """What TRL's DPOTrainer logs, for every objective alike: the chosen response is the top
    group's first, the rejected one the last group's first (a DPO pair's two responses).
    rewards = beta * (log pi - log ref) summed over the response (beta 1 for MGP, which has
    none); logps: the policy's summed log-probs; log_ratio_per_token: the mean token log ratio.
    Where a response is the base model's own sample, minus its log_ratio_per_token estimates
    the per-token KL(base || policy)."""
    rejected = torch.tensor([sum(sizes) - sizes[-1] for sizes in scored["group_sizes"]])
    rows = torch.arange(len(rejected))
    pick = {"chosen": (rows, torch.zeros_like(rejected)), "rejected": (rows, rejected)}
    beta = 1.0 if beta is None else beta
    out, rewards = {}, {}
    for name, at in pick.items():
        policy, ref = scored["policy"][at].detach(), scored["ref"][at].detach()
        tokens = scored["token_mask"][at].sum(-1).clamp(min=1)
        rewards[name] = beta * (policy - ref)
        out[f"rewards/{name}"] = rewards[name].mean().item()
        out[f"logps/{name}"] = policy.mean().item()
        out[f"log_ratio_per_token/{name}"] = ((policy - ref) / tokens).mean().item()
    margins = rewards["chosen"] - rewards["rejected"]
    return {**out, "rewards/margins": margins.mean().item(), "rewards/accuracies": (margins > 0).float().mean().item()}


def accumulate(model, processor, items, load_image, objective: Objective, objective_cfg: ObjectiveSettings,
               micro_batch_size: int, device, *, batch_size: int | None = None,
               micro_batches: int = 0, filler=None, chosen_nll_weight: float = 0.0) -> tuple[float, dict]:
    """Backward the batch's mean loss in micro-batches (gradient accumulation: the papers'
    batch of 128 on GPUs that hold a few sequences); returns the loss and metrics, weighted
    by micro-batch size. `items` may be this process's share of a batch of `batch_size`.

    Under FSDP every process must run as many passes as the others (each pass gathers the
    sharded weights from all of them): up to `micro_batches` passes are run on `filler` with
    weight 0. `chosen_nll_weight` adds that times the chosen response's mean token negative
    log-likelihood to every objective (an anchor on the chosen likelihood, as RPO adds to DPO)."""
    total, metrics = 0.0, {}
    parts = [items[s:s + micro_batch_size] for s in range(0, len(items), micro_batch_size)]
    for part in parts + [[]] * (micro_batches - len(parts)):
        share = len(part) / (batch_size or len(items))
        part = part or [filler]
        groups, images = [objective.select(r) for r in part], [load_image(r) for r in part]
        scored = score_groups(model, processor, part, groups, images, device)
        if objective.scores_corrupt(objective_cfg):
            scored["policy_corrupt_tokens"] = score_corrupt(model, processor, part, groups, images,
                                                            distributed.is_sharded(model))
        loss, m = objective.loss(scored, objective_cfg)
        m = {**m, **pair_metrics(scored, objective_cfg.beta)}
        if chosen_nll_weight:
            nll = chosen_nll(scored)
            loss = loss + chosen_nll_weight * nll
            m = {**m, "chosen_nll": nll.item()}
        (loss * share).backward()
        total += loss.item() * share
        for k, v in m.items():
            metrics[k] = metrics.get(k, 0.0) + v * share
    return total, metrics


def deterministic_algorithms() -> None:
    """Same inputs, same adapter bytes. Shared-prefix scoring gathers one prompt's keys and
    values for each of its responses, so the backward pass sums many gradients into one row;
    torch's default CPU kernel for that sums in thread order, which made MGP's adapters
    differ between reruns on 2 threads. The deterministic kernels cost nothing measurable here;
    cuBLAS needs its workspace pinned for them."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)


def train_preferences(model, processor, records, load_image, objective: Objective,
                      objective_cfg: ObjectiveSettings, tcfg: TrainingSettings, seed: int, *, device: str = "cpu",
                      checkpoint_dir=None, checkpoint_key: str = "", on_step=None):
    """Train the LoRA-wrapped `model` in place; returns per-step log rows (each also handed
    to `on_step`, where given: `tracking.step_logger`).

    Each step scores the groups the objective selects from each record (a pair for DPO,
    all groups for MGP) and hands their log-probs to the objective's loss. With
    `checkpoint_dir`, resumes from a checkpoint there made for `checkpoint_key` and writes
    them (`checkpoint.Checkpoints`)."""
    deterministic_algorithms()
    torch.manual_seed(seed)
    rng = random.Random(seed)
    order = []
    for _ in range(tcfg.repeat):  # SeVa's reference code repeats the pair list
        for _ in range(tcfg.epochs):
            ep = list(range(len(records)))
            rng.shuffle(ep)
            order += ep
    bs = tcfg.batch_size
    steps = math.ceil(len(order) / bs)
    if steps == 0:
        raise ValueError("train: the preference set is empty; nothing to train on")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    warmup = max(1, round(tcfg.warmup_ratio * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_with_warmup(s, steps, warmup))
    model.train()
    rank, processes = distributed.world()
    sharded = distributed.is_sharded(model)
    with Checkpoints(checkpoint_dir, checkpoint_key, tcfg.checkpoint_every, model, opt, sched) as checkpoints:
        start, loop = checkpoints.resume()
        rows = loop["rows"] if loop else []
        for step in tqdm(range(start, steps), desc="train", mininterval=5, disable=rank > 0, initial=start,
                         total=steps):
            fault_if_injected(step)
            items = [records[i] for i in order[step * bs:(step + 1) * bs]]
            opt.zero_grad(set_to_none=True)
            # data parallel: each process scores every processes-th item of the batch
            micro = tcfg.micro_batch_size or bs
            passes = math.ceil(math.ceil(len(items) / processes) / micro) if sharded else 0
            loss, metrics = accumulate(model, processor, items[rank::processes], load_image, objective, objective_cfg,
                                       micro, device, batch_size=len(items), micro_batches=passes, filler=items[0],
                                       chosen_nll_weight=tcfg.chosen_nll_weight)
            if not sharded:  # FSDP sums the gradients itself
                distributed.sum_gradients(params)
            loss, metrics = distributed.sum_objects(loss, metrics)
            if tcfg.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, tcfg.max_grad_norm)
            opt.step()
            sched.step()
            if not math.isfinite(loss):
                raise FloatingPointError(f"train: loss became {loss} at step {step}")
            rows.append({"step": step, "loss": loss, "lr": sched.get_last_lr()[0], **metrics})
            if on_step:
                on_step(rows[-1])
            checkpoints.after_step(step + 1, steps, {"rows": rows})
    model.eval()
    return rows
