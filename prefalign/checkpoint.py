"""Checkpoints of a training (preference training, the miniature's SFT), so a kill, a time
limit or a preemption costs the steps since the last one, not the whole run.

Every `checkpoint_every` steps, and at the end of the step during which SIGTERM or SIGUSR1
arrived (a scheduler's warning before its time limit or a preemption), each process writes
atomically its trainable weights, optimizer and scheduler states, torch's RNG states, the
loop's own state (log rows so far, its data order) and the next step. A rerun on the same
inputs and settings resumes there and ends byte-identical on the same machine to an
uninterrupted run: the loop's data order and RNG states are restored. A checkpoint made from other
inputs or settings is discarded, with a log line saying so.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import threading
from pathlib import Path

import torch

from . import distributed
from .io import atomic_path
from .provenance import canonical

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Stopped(RuntimeError):
    """Training stopped on a signal after writing a checkpoint; a rerun resumes from it."""


def fingerprint(settings: dict, files: list) -> str:
    """What a checkpoint is valid for: the settings (but how often to checkpoint), and each
    input file's size and modification time (any rewrite of an input discards the checkpoint);
    None in `files` is no file."""
    stats = []
    for f in filter(None, files):
        for p in sorted(Path(f).rglob("*")) if Path(f).is_dir() else [Path(f)]:
            if p.is_file():
                s = p.stat()
                stats.append([str(p), s.st_size, s.st_mtime_ns])
    text = json.dumps({"settings": canonical(settings), "files": stats}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def fault_if_injected(step: int) -> None:
    """Tests of recovery: PREFALIGN_FAULT_AT_STEP=N sends this process PREFALIGN_FAULT_SIGNAL
    (KILL by default: no handler, no cleanup, as the OOM killer; TERM or USR1 as a scheduler's
    warning) at the start of step N."""
    if os.environ.get("PREFALIGN_FAULT_AT_STEP") == str(step):
        name = os.environ.get("PREFALIGN_FAULT_SIGNAL", "KILL")
        log.warning("PREFALIGN_FAULT_AT_STEP=%d: sending SIG%s to this process", step, name)
        os.kill(os.getpid(), getattr(signal, f"SIG{name}"))


class Checkpoints:
    """One training's checkpoints in `folder` (one file per process), valid for `key`; none
    where `folder` is None. A context: the signal handlers are in place inside it."""

    def __init__(self, folder, key: str, every: int, model, opt, sched, name: str = "train"):
        self.rank, self.processes = distributed.world()
        self.folder, self.key, self.every, self.name = Path(folder or "."), key, every, name
        self.params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        self.opt, self.sched = opt, sched
        self.signal, self.previous = None, {}
        self.enabled = folder is not None

    def __enter__(self):
        if self.enabled and threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._on_signal) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)

    def _on_signal(self, signum, frame) -> None:
        log.warning("checkpoints: %s received; stopping after this step", signal.Signals(signum).name)
        self.signal = signum

    def path(self, rank: int) -> Path:
        return rank_file(self.folder, rank)

    def resume(self) -> tuple[int, dict | None]:
        """Load the latest checkpoint where every process has one for this key at the same
        step: (the next step, the loop's state as passed to `after_step`); else (0, None)."""
        if not self.enabled or not self.folder.exists():
            return 0, None
        states = [torch.load(self.path(r), weights_only=False) if self.path(r).exists() else None
                  for r in range(self.processes)]
        steps = {s["step"] if s and s["key"] == self.key and s["processes"] == self.processes else None
                 for s in states}
        if None in steps or len(steps) != 1:  # later checkpoints overwrite it
            log.info("checkpoints: %s holds none for these inputs and settings; starting at step 0", self.folder)
            return 0, None
        state = states[self.rank]
        with torch.no_grad():
            for n, p in self.params.items():
                local_part(p).copy_(state["params"][n])
        self.opt.load_state_dict(sharded_like(state["optimizer"], self.opt))
        self.sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        if torch.cuda.is_available() and state["cuda_rng"] is not None:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        log.info("resumed from step %d (checkpoint %s)", state["step"], self.folder)
        return state["step"], state["loop"]

    def after_step(self, next_step: int, total: int, loop: dict) -> None:
        """Write a checkpoint when one is due or a signal came (then stop: raise Stopped)."""
        if not self.enabled:
            return
        stop = distributed.any_process(self.signal is not None)
        due = self.every and next_step % self.every == 0 and next_step < total
        if not (stop or due):
            return
        state = {"key": self.key, "processes": self.processes, "step": next_step, "loop": loop,
                 "params": {n: local_part(p).detach().cpu().clone() for n, p in self.params.items()},
                 "optimizer": local_parts(self.opt.state_dict()), "scheduler": self.sched.state_dict(),
                 "rng": torch.get_rng_state(),
                 "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path(self.rank)) as tmp:
            torch.save(state, tmp)
        log.info("checkpoint at step %d of %d", next_step, total)
        if stop:
            raise Stopped(f"{self.name}: stopped on a signal after step {next_step} of {total}; "
                          f"checkpoint in {self.folder}, a rerun resumes from it")


# Under FSDP a parameter and its optimizer state are DTensors whose local part is this
# process's shard: each process writes and reads back its own shards (a checkpoint holds the
# number of processes, and only a run with as many resumes from it).
def local_part(t):
    from torch.distributed.tensor import DTensor

    return t.to_local() if isinstance(t, DTensor) else t


def local_parts(opt_state: dict) -> dict:
    """An optimizer's state dict with every DTensor replaced by its local shard."""
    return {**opt_state, "state": {k: {name: local_part(v) for name, v in s.items()}
                                   for k, s in opt_state["state"].items()}}


def sharded_like(opt_state: dict, opt) -> dict:
    """`local_parts` undone: each saved shard wrapped as its parameter's DTensor again."""
    from torch.distributed.tensor import DTensor

    params = [p for group in opt.param_groups for p in group["params"]]

    def wrap(p, v):
        if isinstance(p, DTensor) and torch.is_tensor(v) and v.shape == p.to_local().shape and v.dim() > 0:
            return DTensor.from_local(v.to(p.to_local().device), p.device_mesh, p.placements, shape=p.shape,
                                      stride=p.stride())
        return v
    return {**opt_state, "state": {k: {name: wrap(params[int(k)], v) for name, v in s.items()}
                                   for k, s in opt_state["state"].items()}}


def rank_file(folder, rank: int) -> Path:
    return Path(folder) / f"rank{rank}.pt"


def discard(folder) -> None:
    """After the run's outputs are written: each process removes its own file."""
    rank_file(folder, distributed.world()[0]).unlink(missing_ok=True)
    if distributed.world()[0] == 0 and Path(folder).exists() and not any(Path(folder).iterdir()):
        Path(folder).rmdir()
