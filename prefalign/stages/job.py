"""Snakemake glue: what every rule script does before it calls its stage."""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from ..data import set_world_dir, world_dir
from ..forkserver import run_in_forkserver

__all__ = ["run_in_forkserver", "setup", "placement", "optional_input"]  # scripts call the first one first


def setup(smk) -> None:
    """Everything the job writes to stderr (logging records, warnings, tqdm, a traceback,
    torchrun workers' output) goes to the rule's log file, as the catalogue's workflows do; the
    console keeps Snakemake's own progress. Torch, where the stage imported it, gets the rule's
    threads (a stage that needs no torch does not pay its import). Records' "{world}/..." image
    paths mean this results folder's world."""
    if smk.log:
        Path(smk.log[0]).parent.mkdir(parents=True, exist_ok=True)
        sys.stderr.flush()
        with open(smk.log[0], "w") as f:  # fd 2 itself, so child processes inherit it
            os.dup2(f.fileno(), 2)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(max(1, smk.threads))
    set_world_dir(world_dir(smk.config["results"]))


def placement(smk) -> dict:
    """Where the stage runs: the config's device and dtype. They are no params of their own:
    every rule's `upstream` digest holds them (provenance.GLOBAL), so a change reruns the job."""
    return {"device": smk.config["device"], "dtype": smk.config["dtype"]}


def optional_input(smk, name: str):
    """The path of an input that a rule lists only when needed (e.g. the world), or None."""
    value = smk.input.get(name)
    if value is None or isinstance(value, str):
        return value or None
    return value[0] if len(value) else None
