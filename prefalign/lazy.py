"""torch for the method modules, imported on first use: Snakemake plans the DAG from each
method's `needs` and `MODELS`, and every Snakemake start (a dry run, each job on a cluster)
would otherwise import torch (about 4 s) for nothing."""
from __future__ import annotations

import importlib


class LazyModule:
    """Stands for module `name`; the first attribute read imports it."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        return getattr(importlib.import_module(self._name), attr)


torch = LazyModule("torch")
F = LazyModule("torch.nn.functional")
