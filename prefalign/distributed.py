"""Data-parallel LoRA training over the GPUs of one node (torchrun), exact to one process.

Each process scores its share of each batch; the adapter gradients are summed over
processes before clipping and the optimizer step, so N processes take the very step one
process takes with gradient accumulation over the same batch (tested with 2 CPU processes
on gloo). `training.<setting>.processes: N` makes the train stage start its worker module with
`torch.distributed.run --standalone --nproc_per_node N`. By default every process holds the
whole model; with `fsdp: true` the processes split every weight, gradient and optimizer
state between them (`shard_model`), for adapters whose training state does not fit beside
the model on one GPU (SeVa's and ASPO's rank-1024 LoRA on a 7B model).
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


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


def any_process(flag: bool) -> bool:
    """True on every process when `flag` is true on any (a decision all of them must share)."""
    if world()[1] == 1:
        return flag
    t = torch.tensor([int(flag)], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t)
    return bool(t.item())


def shard_model(model, device: str):
    """FSDP2 full sharding (ZeRO stage 3's scheme): each transformer block (the model's
    `_no_split_modules`) and the whole model keep 1/N of their parameters, gradients and
    optimizer state per process and gather the rest around each forward and backward.
    Gradients are summed, not averaged, over processes, as `sum_gradients` does."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(device.split(":")[0], (world()[1],))
    # a bf16 model carries float32 LoRA weights (peft keeps adapters in float32): each pass
    # gathers them in the model's dtype, and gradients are summed in float32
    compute = min((p.dtype for p in model.parameters()), key=lambda d: torch.finfo(d).bits)
    policy = MixedPrecisionPolicy(param_dtype=compute, reduce_dtype=torch.float32)
    blocks = set(getattr(model.get_base_model(), "_no_split_modules", None) or ())
    for module in list(model.modules()):
        if type(module).__name__ in blocks:
            fully_shard(module, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.set_gradient_divide_factor(1.0)
            module.set_force_sum_reduction_for_comms(True)  # plain SUM (gloo has no pre-multiplied sum)
    local = sum(p.to_local().numel() for p in model.parameters())
    total = sum(p.numel() for p in model.parameters())
    log.info("fsdp: process %d holds %d of %d weights", world()[0], local, total)
    return model


def is_sharded(model) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def full_trainable_state(model) -> dict:
    """The trainable (LoRA) weights whole, on every process: a collective under FSDP."""
    from torch.distributed.tensor import DTensor

    return {n: (p.full_tensor() if isinstance(p, DTensor) else p).detach().cpu()
            for n, p in model.named_parameters() if p.requires_grad}


def finish() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def launch(processes: int, worker: str, kwargs: dict) -> None:
    """Run module `worker` in `processes` torchrun processes on this node; each reads its
    keyword arguments from the JSON file named by its one argument."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(kwargs, f)
    try:
        subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                        f"--nproc_per_node={processes}", "-m", worker, f.name], check=True)
    finally:
        os.unlink(f.name)
