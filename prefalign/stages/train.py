"""Rule train: one run's LoRA adapter on one preference set, objective and seed."""
from __future__ import annotations

from pathlib import Path

import torch

from .. import checkpoint, distributed
from ..data import open_record_image
from ..io import atomic_path, read_jsonl, write_csv
from ..plots import save_figure, training_curves
from ..settings import ObjectiveSettings, TrainingSettings
from ..tracking import step_logger

WORKER = "prefalign.stages.train_worker"


def train(*, prefs_path, model_dir, adapter_dir, log_csv, curves_png, title: str,
          objective: ObjectiveSettings, training: TrainingSettings, seed: int, device: str,
          dtype: str, reference_path=None) -> None:
    """With `processes: N` > 1, on N processes (torchrun, each running `WORKER`). With
    `reference_path` the reference log-probs are read (rule reference_logps), not recomputed."""
    from ..methods import objective as objective_of
    from ..methods.records import validate_record
    from ..model import load_model
    from ..training import add_lora, train_preferences

    if training.processes > 1 and not distributed.launched_by_torchrun():
        kwargs = dict(prefs_path=str(prefs_path), model_dir=str(model_dir), adapter_dir=str(adapter_dir),
                      log_csv=str(log_csv), curves_png=str(curves_png), title=title,
                      objective=objective.as_dict(), training=training.as_dict(), seed=seed, device=device, dtype=dtype,
                      reference_path=str(reference_path) if reference_path else None)
        return distributed.launch(training.processes, WORKER, kwargs)
    device = distributed.init(device)
    records = [validate_record(r, prefs_path, f"line {i}") for i, r in enumerate(read_jsonl(prefs_path), 1)]
    if reference_path:
        from ..reference import attach

        attach(records, reference_path)
    model, processor = load_model(model_dir, dtype=dtype, device=device)
    torch.manual_seed(seed)  # LoRA's A matrices are drawn at random: the same in every process and rerun
    model = add_lora(model, training.lora)
    sharded = distributed.world()[1] > 1 and training.fsdp
    if sharded:
        model = distributed.shard_model(model, device)
    # beside the adapter, not an output: Snakemake removes a failed job's outputs
    checkpoints = Path(adapter_dir).parent / "checkpoint"
    key = checkpoint.fingerprint({"objective": objective.as_dict(), "training": training.as_dict(), "seed": seed,
                                  "device": device, "dtype": dtype},
                                 [prefs_path, reference_path, model_dir])
    tracked = training.report_to if distributed.world()[0] == 0 else "none"
    config = {"objective": objective.as_dict(), "training": training.as_dict(), "seed": seed,
              "preferences": str(prefs_path)}
    with step_logger(tracked, Path(adapter_dir).parent, title, config) as on_step:
        rows = train_preferences(model, processor, records,
                                 lambda r: open_record_image(r, prefs_path),
                                 objective_of(objective.loss), objective, training, seed, device=device,
                                 checkpoint_dir=checkpoints, checkpoint_key=key, on_step=on_step)
    state = distributed.full_trainable_state(model) if sharded else None
    if distributed.world()[0] == 0:  # every process holds the same weights; one writes
        with atomic_path(adapter_dir) as tmp:
            model.save_pretrained(tmp, state_dict=state)
        write_csv(log_csv, rows)
        save_figure(training_curves(rows, title), curves_png)
    checkpoint.discard(checkpoints)
    distributed.finish()
