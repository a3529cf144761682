"""Data-parallel LoRA training over the GPUs of one node (torchrun), exact to one process.

Every process holds the whole model (LoRA trains adapter weights only, so a 7B model in
bf16 fits on one 80 GB GPU with its activations) and scores its share of each batch; the
adapter gradients are summed over processes before clipping and the optimizer step, so N
processes take the very step one process takes with gradient accumulation over the same
batch (tested with 2 CPU processes on gloo). `training.<setting>.processes: N` makes the
train stage relaunch itself with `torch.distributed.run --standalone --nproc_per_node N`.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, number of processes); (0, 1) outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def launched_by_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ


def init(device: str) -> str:
    """Join the process group torchrun set up (nccl on GPUs, gloo on CPU); this process's device."""
    if not launched_by_torchrun():
        return device
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    if device.startswith("cuda"):
        device = f"cuda:{os.environ['LOCAL_RANK']}"
        torch.cuda.set_device(device)
    return device


def sum_gradients(params) -> None:
    """All-reduce (sum) the gradients of the trainable parameters; a process that scored
    nothing this step contributes zeros."""
    if world()[1] == 1:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)


def sum_objects(loss: float, metrics: dict) -> tuple[float, dict]:
    """Sum each process's (share-weighted) loss and metrics into the batch's values."""
    if world()[1] == 1:
        return loss, metrics
    gathered = [None] * world()[1]
    dist.all_gather_object(gathered, (loss, metrics))
    total, summed = 0.0, {}
    for part_loss, part_metrics in gathered:
        total += part_loss
        for k, v in part_metrics.items():
            summed[k] = summed.get(k, 0.0) + v
    return total, summed


def finish() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def launch(processes: int, stage_kwargs: dict) -> None:
    """Run `stages.train(**stage_kwargs)` in `processes` torchrun processes on this node."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(stage_kwargs, f)
    try:
        subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                        f"--nproc_per_node={processes}", "-m", "prefalign.distributed", f.name], check=True)
    finally:
        os.unlink(f.name)


if __name__ == "__main__":  # a torchrun worker
    from . import stages

    with open(sys.argv[1]) as fh:
        kwargs = json.load(fh)
    stages.train(**kwargs)
