"""Benchmarks through the real lmms-eval package, for the base model and trained adapters alike.

The miniature's benchmarks are local lmms-eval tasks (`prefalign/lmms_tasks/`), written
out with the absolute path of their parquet files and loaded with `include_path`. A LoRA
adapter is attached to the lmms-eval model after loading, so no merge step is needed; float32
weights are then merged with it in memory (`adapted`).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import yaml

log = logging.getLogger(__name__)
TASK_TEMPLATES = Path(__file__).parent / "lmms_tasks"


def is_miniature(task: str) -> bool:
    """A benchmark of the miniature world (`prefalign/lmms_tasks/`), not from lmms-eval's registry."""
    return task.startswith("prefalign_")


def write_task_dir(dest: Path, data_dir: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(TASK_TEMPLATES / "utils.py", dest / "utils.py")
    for template in TASK_TEMPLATES.glob("*.yaml"):
        (dest / template.name).write_text(template.read_text().replace("__DATA__", str(data_dir.resolve())))
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


def model_kwargs(model_class, device: str, dtype: str, batch_size: int) -> dict:
    """Device, dtype and batch size for an lmms-eval model class, as far as its constructor takes
    them (`llava_hf` takes `dtype`; `qwen2_5_vl` rejects unknown arguments and loads bf16 itself)."""
    import inspect

    accepted = inspect.signature(model_class.__init__).parameters
    wanted = {"device": device, "device_map": device, "dtype": dtype, "batch_size": batch_size}
    return {k: v for k, v in wanted.items() if k in accepted}


def is_empty_response(response) -> bool:
    """A generated answer that is blank (loglikelihood results are tuples, never empty)."""
    if isinstance(response, str):
        return not response.strip()
    return isinstance(response, list) and bool(response) and all(isinstance(r, str) and not r.strip()
                                                                   for r in response)


def check_responses(samples: dict, model_name: str, failures_raise: bool = False) -> None:
    """lmms-eval's model classes log a failed generation and score an empty answer instead of
    raising (`llava_hf`, `qwen2_5_vl`), so a broken model would read as a benchmark score of 0.
    For such a class a task whose every answer is empty stops the stage; for a class whose
    failures raise (`failures_raise`, e.g. `llava_hf_batched`) empty answers are what the model
    said (a collapsed adapter ends every answer at once) and are logged like some empty ones."""
    for task, rows in samples.items():
        empty = sum(is_empty_response(r["response"]) for r in rows)
        if rows and empty == len(rows) and not failures_raise:
            raise RuntimeError(f"lmms-eval task {task}: all {empty} answers of model class {model_name} are "
                               "empty; its generation failed (the class logs the error above instead of raising)")
        if empty:
            log.warning("evaluate: %s: %d of %d answers are empty", task, empty, len(rows))


def adapted(model, adapter: str):
    """`model` with the LoRA adapter attached, and merged into float32 weights: the merged model
    answers as the attached one does (tests/test_real_architectures.py), and on the miniature
    generates 1.3x and evaluates 1.1x faster (docs/notes.md, issue 15). Weights of 16 bits keep
    it attached: merging rounds the adapter's small updates to their precision."""
    import torch

    from .model import attach_adapter

    model = attach_adapter(model, adapter).eval()
    if all(p.dtype == torch.float32 for p in model.parameters()):
        model = model.merge_and_unload()
    return model


def run_lmms_eval(model_path: str, adapter: str | None, tasks: list[str], task_dir: Path, *,
                  limit: int | None = None, model_name: str = "llava_hf", dtype: str = "float32",
                  device: str = "cpu", model_args: dict | None = None, batch_size: int = 1) -> tuple[dict, dict]:
    """Return (aggregate results per task, per-sample metric rows per task). `model_args` go to
    the lmms-eval model class as given (e.g. Qwen2.5-VL's `max_pixels`), over device, dtype and
    batch size (`llava_hf` generates one item at a time; `llava_hf_batched` takes any size)."""
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.models import get_model
    from lmms_eval.tasks import TaskManager

    model_class = get_model(model_name)
    lm = model_class(pretrained=model_path,
                     **{**model_kwargs(model_class, device, dtype, batch_size), **(model_args or {})})
    if adapter:
        lm._model = adapted(lm._model, adapter)
    # The miniature's tasks come from task_dir; the papers' benchmarks from lmms-eval's registry.
    manager = TaskManager(include_path=str(task_dir) if task_dir else None,
                          include_defaults=not all(map(is_miniature, tasks)),
                          model_name=getattr(model_class, "task_model_name", model_name))
    out = simple_evaluate(model=lm, tasks=tasks, task_manager=manager, limit=limit,
                          log_samples=True, batch_size=batch_size, device=device)
    samples = {}
    for task, rows in out["samples"].items():
        samples[task] = []
        for row in rows:
            # process_results rows are the dict-valued entries beside the document itself
            metrics = {k: v for k, v in row.items() if k != "doc" and isinstance(v, dict)}
            first = next((v for v in metrics.values() if "id" in v), None)
            if first is None:  # a registry task: keep its metric values per document
                first = {"id": str(row.get("doc_id")), **{k: _jsonable(v) for k, v in metrics.items()}}
            samples[task].append({**first, "response": _jsonable(row.get("filtered_resps"))})
    check_responses(samples, model_name, getattr(model_class, "generation_failures_raise", False))
    return _jsonable(out["results"]), samples


def benchmark_info() -> dict:
    """lmms-eval task -> {metric the papers report, judge: needs a GPT judge} (benchmarks.yaml)."""
    return yaml.safe_load((Path(__file__).parent / "benchmarks.yaml").read_text())


def judge_skips(tasks: list[str], judge_tasks: list[str] | None = None, env=None) -> dict[str, str]:
    """Tasks that need a GPT judge, when no OPENAI_API_KEY is set: skipped, with the reason."""
    env = os.environ if env is None else env
    if env.get("OPENAI_API_KEY"):
        return {}
    info = benchmark_info()
    judged = set(judge_tasks) if judge_tasks is not None else {t for t in tasks if info.get(t, {}).get("judge")}
    return {t: "skipped: needs a GPT judge and OPENAI_API_KEY is not set" for t in tasks if t in judged}


def write_evaluation(folder: Path, tasks: list[str], results: dict, samples: dict, skipped: dict) -> None:
    """results.json, samples.jsonl (in the configured task order) and skipped.json."""
    (folder / "skipped.json").write_text(json.dumps(skipped, indent=1, sort_keys=True))
    (folder / "results.json").write_text(json.dumps(results, indent=1, sort_keys=True))
    with open(folder / "samples.jsonl", "w") as f:
        for task in sorted(samples, key=lambda t: tasks.index(t) if t in tasks else len(tasks)):
            for r in samples[task]:
                f.write(json.dumps({"task": task, **r}, sort_keys=True) + "\n")


def read_evaluation(folder) -> tuple[dict, dict, dict]:
    """(results, samples per task, skipped) of an evaluation folder."""
    from .io import read_jsonl

    folder = Path(folder)
    samples: dict = {}
    # lmms-eval's per-sample rows carry each benchmark's own fields, where NaN may mean "not
    # applicable"; the tables' metrics are computed from the fields they name
    for row in read_jsonl(folder / "samples.jsonl", finite=False):
        samples.setdefault(row.pop("task"), []).append(row)
    return (json.loads((folder / "results.json").read_text()), samples,
            json.loads((folder / "skipped.json").read_text()))


def evaluate_to(out_dir, judge_tasks=None, **kwargs) -> None:
    """Run lmms-eval and write results.json, samples.jsonl and skipped.json atomically into
    out_dir. GPT-judged tasks without an API key are skipped and listed, never dropped."""
    from .io import atomic_path

    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        data_dir = kwargs.pop("data_dir")
        task_dir = write_task_dir(tmp / "tasks", Path(data_dir)) if data_dir else None
        tasks = list(kwargs["tasks"])
        skipped = judge_skips(tasks, judge_tasks)
        for task, why in skipped.items():
            log.warning("evaluate: %s %s", task, why)
        kwargs["tasks"] = [t for t in tasks if t not in skipped]
        results, samples = run_lmms_eval(task_dir=task_dir, **kwargs) if kwargs["tasks"] else ({}, {})
        write_evaluation(tmp, tasks, results, samples, skipped)


def join_evaluations(task_dirs, tasks: list[str], out_dir) -> None:
    """One evaluation folder from per-task ones (`evaluation.split_tasks`): the same files a
    single job over all tasks writes. A group task (e.g. `mmmu_pro`) brings its subtasks; a
    folder without results or with a task another folder also has stops the join."""
    from .io import atomic_path

    results, samples, skipped = {}, {}, {}
    for task, folder in zip(tasks, task_dirs, strict=True):
        r, s, k = read_evaluation(folder)
        if not r and not k:
            raise ValueError(f"{folder}: no results for task {task}")
        if twice := (set(r) | set(k) | set(s)) & (set(results) | set(skipped) | set(samples)):
            raise ValueError(f"{folder}: task(s) {sorted(twice)} are also in another task's folder")
        results.update(r), samples.update(s), skipped.update(k)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        write_evaluation(tmp, tasks, results, samples, skipped)
