"""Training with reference log-probs computed once (rule reference_logps) vs recomputed every step.

    python benchmarks/reference_logps.py [--prefs results/seed1/preferences/smpro.jsonl]
        [--model results/base_model/model] [--objective mgp] [--steps 20] [--batch-size 16]

Both run side by side in one process on the same records, through the code the train stage
runs (`training.train_preferences`), from the same LoRA initialisation: `recomputed` scores
every batch under the reference (adapter disabled) as well as under the policy; `stored`
reads the log-probs that `reference.compute` wrote once. The one-off cost of computing the
file is printed beside them (it is paid once per preference set, for every run, seed and
epoch that trains on it). The last column is the largest difference in per-step loss.
"""
from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from pathlib import Path

import torch

from prefalign import reference
from prefalign.data import open_record_image
from prefalign.io import read_jsonl
from prefalign.methods import objective
from prefalign.model import load_model
from prefalign.settings import ObjectiveSettings, TrainingSettings
from prefalign.training import add_lora, train_preferences

OBJECTIVES = {"dpo": {"loss": "dpo", "beta": 0.1},
              "mgp": {"loss": "mgp", "steepness": 0.1, "swap": "cauchy", "alpha": 0.17}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prefs", default="results/seed1/preferences/smpro.jsonl")
    parser.add_argument("--model", default="results/base_model/model")
    parser.add_argument("--objective", default="mgp", choices=sorted(OBJECTIVES))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    records = read_jsonl(args.prefs)[:args.steps * args.batch_size]
    base, processor = load_model(args.model)
    base.eval()

    def load(r):
        return open_record_image(r, args.prefs)

    start = time.perf_counter()
    stored = copy.deepcopy(records)
    with tempfile.TemporaryDirectory() as tmp:
        reference.write(Path(tmp) / "ref.safetensors", reference.compute(stored, base, processor, load))
        reference.attach(stored, Path(tmp) / "ref.safetensors")
    once = time.perf_counter() - start
    tcfg = TrainingSettings.from_partial({"lora": {"r": 16, "alpha": 32}, "lr": 5e-4, "epochs": 1,
                                          "batch_size": args.batch_size, "checkpoint_every": 0})
    ocfg = ObjectiveSettings.from_partial(OBJECTIVES[args.objective])
    timings, losses = {}, {}
    for name, recs in (("recomputed", records), ("stored", stored)):
        torch.manual_seed(0)
        model = add_lora(copy.deepcopy(base), tcfg.lora)
        start = time.perf_counter()
        rows = train_preferences(model, processor, recs, load, objective(args.objective), ocfg, tcfg, seed=0)
        timings[name] = time.perf_counter() - start
        losses[name] = [r["loss"] for r in rows]
    steps = len(losses["stored"])
    diff = max(abs(a - b) for a, b in zip(losses["recomputed"], losses["stored"]))
    print(f"{args.objective} on {len(records)} records of {args.prefs}, {steps} steps of {args.batch_size}")
    print(f"{'recomputed s':>12} {'stored s':>9} {'ratio':>6} {'once s':>7} {'max |loss diff|':>16}")
    print(f"{timings['recomputed']:>12.1f} {timings['stored']:>9.1f} "
          f"{timings['recomputed'] / timings['stored']:>6.2f} {once:>7.1f} {diff:>16.2e}")


if __name__ == "__main__":
    main()
