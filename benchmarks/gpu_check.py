"""The real base models on a GPU, measured beside the planner's estimates (make gpu-check).

    python benchmarks/gpu_check.py                 # on a CUDA machine: the real shapes in bf16
    python benchmarks/gpu_check.py --size tiny     # anywhere: the reduced shapes (CPU test)

Needs torch and transformers only (whatever versions are installed, no network): each of the
four base models (prefalign.shapes) is built with random weights directly on the device at
its real shape (`--size full`; `tiny` keeps the image geometry and head layout and cuts
depth and width), and fed synthetic token ids with a 480 x 640 image's real count of image
tokens. It runs batched sampling (model.generate), shared-prefix scoring
(prefalign.model.shared_prefix_token_logps, the workflow's scorer) and training steps of
each objective (the workflow's loss functions on those log-probs, LoRA on the language
model's linear layers, AdamW). For each it prints tokens/s, peak memory, achieved FLOP/s and
their share of the device's peak (MFU), and beside them the planner's estimate
(prefalign.plan: its FLOPs and peak memory for the same batch, its time at its assumed MFU).
"""
from __future__ import annotations

import argparse
import math
import re
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefalign import plan, shapes  # noqa: E402
from prefalign.methods.aspo import aspo_margin  # noqa: E402
from prefalign.methods.consr import consr_loss, token_visual_weights  # noqa: E402
from prefalign.methods.dpo import dpo_loss  # noqa: E402
from prefalign.methods.smpro import mgp_loss  # noqa: E402
from prefalign.model import shared_prefix_token_logps  # noqa: E402

IMAGE = (480, 640)
# objective -> responses per item (SMPRO: 3 groups of 3)
OBJECTIVES = {"dpo": 2, "mgp": 9, "aspo": 2, "consr": 2}


class LoRALinear(torch.nn.Module):
    """y = W x + (alpha / r) B A x with A, B in float32 (as peft keeps them); W frozen."""

    def __init__(self, base: torch.nn.Linear, r: int, alpha: int):
        super().__init__()
        self.base, self.scale = base, alpha / r
        self.lora_a = torch.nn.Parameter(torch.empty(r, base.in_features, device=base.weight.device))
        self.lora_b = torch.nn.Parameter(torch.zeros(base.out_features, r, device=base.weight.device))
        torch.nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))

    def forward(self, x):
        return self.base(x) + (self.scale * (x.float() @ self.lora_a.T @ self.lora_b.T)).to(x.dtype)


def add_lora(model, r: int) -> list[torch.nn.Parameter]:
    for p in model.parameters():
        p.requires_grad_(False)
    pattern = re.compile(shapes.LLM_LINEAR_TARGETS)
    targets = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and pattern.fullmatch(n)]
    for name, module in targets:
        parent, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(parent), leaf, LoRALinear(module, r, 2 * r))
    return [p for n, p in model.named_parameters() if "lora_" in n]


def image_inputs(arch: shapes.Architecture, batch: int, dtype, device) -> tuple[dict, list[int]]:
    """Pixel inputs of `batch` 480 x 640 images and the ids each prompt's image becomes."""
    ids = shapes.special_token_ids(arch.text.vocab)
    n = shapes.image_tokens(arch, *IMAGE)
    if arch.family == "llava":
        size = arch.vision.image_size
        return {"pixel_values": torch.randn(batch, 3, size, size, dtype=dtype, device=device)}, [ids["image"]] * n
    if arch.family == "llava_onevision":
        size = arch.vision.image_size
        views = shapes.vision_positions(arch, *IMAGE) // (size // arch.vision.patch_size) ** 2
        return {"pixel_values": torch.randn(batch, views, 3, size, size, dtype=dtype, device=device),
                "image_sizes": torch.tensor([IMAGE] * batch, device=device)}, [ids["image"]] * n
    h, w = shapes.qwen_grid(arch, *IMAGE)
    p = arch.vision.patch_size
    grid = torch.tensor([[1, h // p, w // p]] * batch, device=device)
    pixels = torch.randn(batch * (h // p) * (w // p), 3 * 2 * p * p, dtype=dtype, device=device)
    return ({"pixel_values": pixels, "image_grid_thw": grid},
            [ids["vision_start"]] + [ids["image"]] * n + [ids["vision_end"]])


def prompts(arch, batch: int, text_tokens: int, dtype, device, gen: torch.Generator) -> dict:
    pixels, image_ids = image_inputs(arch, batch, dtype, device)
    text = torch.randint(8, arch.text.vocab - 8, (batch, text_tokens), generator=gen).to(device)
    ids = torch.cat([text[:, :text_tokens // 2], torch.tensor([image_ids] * batch, device=device),
                     text[:, text_tokens // 2:]], 1)
    enc = {"input_ids": ids, "attention_mask": torch.ones_like(ids), **pixels}
    if arch.family == "qwen2_5_vl":  # 1 marks image tokens: what the model builds its 3-D positions from
        enc["mm_token_type_ids"] = (ids == shapes.special_token_ids(arch.text.vocab)["image"]).long()
    return enc


class Clock:
    """Wall seconds and peak memory of a block, synchronised on a GPU."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self.t0
        self.peak_gb = torch.cuda.max_memory_allocated() / 1e9 if self.cuda else float("nan")


def objective_loss(name: str, logps: torch.Tensor, mask: torch.Tensor, items: int, gen) -> torch.Tensor:
    """The objective's loss on policy token log-probs [items * k, T]; the reference log-probs
    (stored by the workflow) stand in as the policy's, detached and perturbed."""
    ref = logps.detach() + 0.1 * torch.randn(logps.shape, generator=gen).to(logps.device) * mask
    seq, ref_seq = logps.sum(-1).view(items, -1), ref.sum(-1).view(items, -1)
    if name == "dpo":
        return dpo_loss(seq[:, 0], seq[:, 1], ref_seq[:, 0], ref_seq[:, 1], 0.1)[0].mean()
    if name == "mgp":
        return mgp_loss(seq - ref_seq, [3, 3, 3], 0.1).mean()
    if name == "aspo":  # the chosen response's token ratios summed per sentence (4 per response)
        ratio = (logps - ref).view(items, 2, -1)[:, 0]
        units = ratio.view(items, 4, -1).sum(-1)
        weights = torch.rand(units.shape, generator=gen).to(units.device)
        margin = aspo_margin(units, weights, torch.ones_like(units), (seq - ref_seq)[:, 1], 0.1)
        return -torch.nn.functional.logsigmoid(margin).mean()
    pw, pl = logps.view(items, 2, -1).unbind(1)
    rw, rl = ref.view(items, 2, -1).unbind(1)
    mw, ml = mask.view(items, 2, -1).unbind(1)
    shift = torch.randn(pw.shape, generator=gen).to(pw.device) * 0.1
    return consr_loss(pw, pl, rw, rl, mw, ml, token_visual_weights(shift, 0.5, (0.0, 0.2), 1),
                      token_visual_weights(shift, 0.5, (0.0, 0.2), -1), beta=0.1)[0].mean()


def check(arch_name: str, args, device, dtype, peak_flops: float | None) -> list[dict]:
    full = shapes.ARCHITECTURES[arch_name]
    arch = full if args.size == "full" else shapes.reduced(full)
    gen = torch.Generator().manual_seed(0)
    with Clock(device) as built:
        model = shapes.build_model(arch, dtype=dtype, device=device)
    estimate = plan.Model(arch, torch.finfo(dtype).bits // 8, plan.Assumptions(gpu=args.gpu or "a100", image=IMAGE))
    prompt_len = estimate.image_tokens + args.text_tokens
    rows = []

    def row(what, tokens, clock, flops, est_seconds, est_peak):
        rows.append({"model": arch.name, "pass": what, "tokens": tokens, "s": clock.seconds,
                     "tokens/s": tokens / clock.seconds, "peak GB": clock.peak_gb, "plan GB": est_peak / 1e9,
                     "TFLOP/s": flops / clock.seconds / 1e12,
                     "MFU": flops / clock.seconds / peak_flops if peak_flops else float("nan"),
                     "plan s": est_seconds})

    # sampling: batch x new tokens after the image and prompt
    batch = prompts(arch, args.batch, args.text_tokens, dtype, device, gen)
    kwargs = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=True,
                  pad_token_id=0, eos_token_id=None)
    with torch.no_grad():
        model.generate(**batch, **{**kwargs, "max_new_tokens": 2, "min_new_tokens": 2})  # warm-up
        with Clock(device) as clock:
            model.generate(**batch, **kwargs)
    flops, seconds = estimate.generation(args.batch, prompt_len, args.new_tokens, args.batch)
    row(f"sample {args.batch} x {args.new_tokens}", args.batch * args.new_tokens, clock, flops, seconds,
        estimate.generation_peak(args.batch, prompt_len, args.new_tokens))

    def scoring_batch(k):
        enc = prompts(arch, args.items, args.text_tokens, dtype, device, gen)
        ids = torch.randint(8, arch.text.vocab - 8, (args.items * k, args.response_tokens), generator=gen)
        return {"prompt": enc, "response_ids": ids.to(device), "response_mask": torch.ones_like(ids).to(device),
                "counts": torch.full((args.items,), k)}

    score = scoring_batch(2)
    with torch.no_grad():
        shared_prefix_token_logps(model, score)
        with Clock(device) as clock:
            shared_prefix_token_logps(model, score)
    flops = estimate.scoring(args.items, prompt_len, 2, args.response_tokens)
    row(f"score {args.items} x 2", args.items * (prompt_len + 2 * args.response_tokens), clock, flops,
        estimate.seconds(flops), estimate.scoring_peak(args.items, prompt_len, 2, args.response_tokens))

    lora = add_lora(model, args.lora_r)
    optimizer = torch.optim.AdamW(lora, lr=1e-5)
    lora_params = sum(p.numel() for p in lora)
    for name, k in OBJECTIVES.items():
        step_batch = scoring_batch(k)

        def step():
            logps, mask = shared_prefix_token_logps(model, step_batch)
            objective_loss(name, logps, mask, args.items, gen).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        step()  # warm-up, and AdamW's state exists from here on
        with Clock(device) as clock:
            for _ in range(args.steps):
                step()
        clock.seconds /= args.steps
        flops = estimate.train_step(args.items, prompt_len, k, args.response_tokens, lora_params)
        row(f"train {name} {args.items} x {k}", args.items * (prompt_len + k * args.response_tokens), clock, flops,
            estimate.seconds(flops), estimate.train_peak(args.items, prompt_len, k, args.response_tokens, lora_params))
    print(f"{arch.name}: built in {built.seconds:.1f} s, {estimate.total / 1e6:,.1f}M parameters, "
          f"{estimate.image_tokens} image tokens, LoRA r={args.lora_r} {lora_params / 1e6:.1f}M", flush=True)
    return rows  # the model goes with this frame


def device_peak(device, gpu: str | None) -> tuple[float | None, str | None]:
    """Peak dense bf16 FLOP/s of the device (plan.GPUS), from --gpu or the CUDA device's name."""
    if gpu:
        return plan.GPUS[gpu][0], gpu
    if device.type != "cuda":
        return None, None
    name = torch.cuda.get_device_name(device).lower()
    for key in plan.GPUS:
        if key in name:
            return plan.GPUS[key][0], key
    return None, None


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=["full", "tiny"], default="full")
    ap.add_argument("--models", nargs="+", default=list(shapes.ARCHITECTURES), choices=list(shapes.ARCHITECTURES))
    ap.add_argument("--gpu", choices=sorted(plan.GPUS), help="the device's peak for MFU (default: from its name)")
    ap.add_argument("--batch", type=int, default=8, help="prompts sampled together")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--items", type=int, default=2, help="items per scoring pass and training step")
    ap.add_argument("--text-tokens", type=int, default=60)
    ap.add_argument("--response-tokens", type=int, default=128, help="a multiple of 4 (ASPO's sentences)")
    ap.add_argument("--lora-r", type=int, default=128)
    ap.add_argument("--steps", type=int, default=2, help="timed training steps per objective")
    args = ap.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    peak, gpu = device_peak(device, args.gpu)
    args.gpu = gpu
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    versions = f"torch {torch.__version__}, transformers {__import__('transformers').__version__}"
    print(f"device: {name}, {dtype}, {versions}, size {args.size}; "
          + (f"peak {peak / 1e12:.0f} TFLOP/s" if peak else "no peak known: MFU not shown"), flush=True)
    rows = []
    for arch_name in args.models:
        rows += check(arch_name, args, device, dtype, peak)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    cols = ["model", "pass", "tokens", "s", "tokens/s", "peak GB", "plan GB", "TFLOP/s", "MFU", "plan s"]
    print("\n| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        measured_gb = "-" if math.isnan(r["peak GB"]) else f"{r['peak GB']:.1f}"
        cells = [r["model"], r["pass"], str(r["tokens"]), f"{r['s']:.3f}", f"{r['tokens/s']:,.0f}",
                 measured_gb, f"{r['plan GB']:.1f}", f"{r['TFLOP/s']:.2f}",
                 "-" if math.isnan(r["MFU"]) else f"{100 * r['MFU']:.1f}%", f"{r['plan s']:.3f}"]
        print("| " + " | ".join(cells) + " |")
    print(f"\nplan s: the planner's time at its assumed {100 * plan.ASSUMPTIONS.mfu:.0f}% of peak "
          f"({args.gpu or 'a100'}); plan GB: its peak memory rule (prefalign/plan.py) for the same batch.")


if __name__ == "__main__":
    main()
