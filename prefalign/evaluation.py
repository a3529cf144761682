"""Benchmarks through the real lmms-eval package, for the base model and trained adapters alike.

The miniature's benchmarks are local lmms-eval tasks (`prefalign/lmms_tasks/`), written
out with the absolute path of their parquet files and loaded with `include_path`. A LoRA
adapter is attached to the lmms-eval model after loading, so no merge step is needed.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

TASK_TEMPLATES = Path(__file__).parent / "lmms_tasks"


def write_task_dir(dest: Path, data_dir: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(TASK_TEMPLATES / "utils.py", dest / "utils.py")
    for yaml in TASK_TEMPLATES.glob("*.yaml"):
        (dest / yaml.name).write_text(yaml.read_text().replace("__DATA__", str(data_dir.resolve())))
    return dest


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    if isinstance(x, bytes):
        return None
    return str(x)


def run_lmms_eval(model_path: str, adapter: str | None, tasks: list[str], task_dir: Path,
                  limit: int | None, model_name: str = "llava_hf", dtype: str = "float32",
                  device: str = "cpu") -> tuple[dict, dict]:
    """Return (aggregate results per task, per-sample metric rows per task)."""
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.models import get_model
    from lmms_eval.tasks import TaskManager

    lm = get_model(model_name)(pretrained=model_path, device=device, device_map=device, dtype=dtype)
    if adapter:
        from peft import PeftModel

        lm._model = PeftModel.from_pretrained(lm._model, adapter).eval()
    manager = TaskManager(include_path=str(task_dir), include_defaults=False, model_name=model_name)
    out = simple_evaluate(model=lm, tasks=tasks, task_manager=manager, limit=limit,
                          log_samples=True, batch_size=1, device=device)
    samples = {}
    for task, rows in out["samples"].items():
        samples[task] = []
        for row in rows:
            # process_results rows are the dict-valued entries beside the document itself
            first = next(v for k, v in row.items() if k != "doc" and isinstance(v, dict) and "id" in v)
            samples[task].append({**first, "response": _jsonable(row.get("filtered_resps"))})
    return _jsonable(out["results"]), samples


def evaluate_to(out_dir, **kwargs) -> None:
    """Run lmms-eval and write results.json and samples.jsonl atomically into out_dir."""
    from .io import atomic_path

    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        task_dir = write_task_dir(tmp / "tasks", Path(kwargs.pop("data_dir")))
        results, samples = run_lmms_eval(task_dir=task_dir, **kwargs)
        (tmp / "results.json").write_text(json.dumps(results, indent=1, sort_keys=True))
        with open(tmp / "samples.jsonl", "w") as f:
            for task, rows in samples.items():
                for r in rows:
                    f.write(json.dumps({"task": task, **r}, sort_keys=True) + "\n")
