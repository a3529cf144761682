"""Training metrics beside log.csv, where `training.report_to` asks: Weights & Biases in
offline mode (no account, no network; `wandb sync <folder>` uploads a run later).

`report_to` changes no output (provenance.NO_OUTPUT_EFFECT): the run folders land beside the
job's outputs, `<train>/<run>/wandb/offline-run-*`, one per attempt, and are not outputs."""
from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)

REPORT_TO = ("none", "wandb")
# run.finish() can return before wandb's service process has written the offline run's
# records (read at once, the .wandb file held its header only in 2 of 10 runs)
OFFLINE_WRITE_TIMEOUT_S = 30.0


@contextlib.contextmanager
def step_logger(report_to: str, folder, name: str, config: dict):
    """A function that takes each step's log row (with its "step"), to `report_to`."""
    if report_to == "none":
        yield lambda row: None
        return
    if report_to != "wandb":
        raise ValueError(f"unknown training.report_to {report_to!r} (known: {REPORT_TO})")
    import wandb

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    run = wandb.init(mode="offline", dir=folder, project="prefalign", name=name, config=config,
                     settings=wandb.Settings(silent=True, console="off"))
    run_folder = Path(run.dir).parent
    log.info("training metrics also to Weights & Biases, offline: %s", run_folder)
    try:
        yield lambda row: run.log({k: v for k, v in row.items() if k != "step"}, step=row["step"])
    finally:
        run.finish()
        _wait_for_exit_record(run_folder)


def _wait_for_exit_record(run_folder: Path) -> None:
    """Return once the offline run's .wandb file holds its exit record, so the folder
    is complete when the job's outputs are; warn after OFFLINE_WRITE_TIMEOUT_S."""
    deadline = time.monotonic() + OFFLINE_WRITE_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if any(record.WhichOneof("record_type") == "exit" for record in _records(run_folder)):
                return
        except (ValueError, AssertionError):  # no file yet, or a record half written
            pass
        time.sleep(0.05)
    log.warning("wandb's offline run %s has no exit record after %.0f s: it may be incomplete",
                run_folder, OFFLINE_WRITE_TIMEOUT_S)


def _records(run_folder):
    """The records of a Weights & Biases offline run folder's .wandb file, in order."""
    from wandb.proto import wandb_internal_pb2
    from wandb.sdk.internal import datastore

    (path,) = Path(run_folder).glob("run-*.wandb")
    store = datastore.DataStore()
    store.open_for_scan(str(path))
    while (data := store.scan_data()) is not None:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        yield record


def offline_history(run_folder) -> tuple[dict, list[dict]]:
    """(config, history rows) of a Weights & Biases offline run folder, read back from its
    .wandb file: what `wandb sync` would upload."""
    config, history = {}, []
    for record in _records(run_folder):
        kind = record.WhichOneof("record_type")
        updates = record.run.config.update if kind == "run" else record.config.update if kind == "config" else []
        config.update({i.key: json.loads(i.value_json) for i in updates if i.key != "_wandb"})
        if kind == "history":
            history.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item})
    return config, history
