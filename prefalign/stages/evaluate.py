"""Rules evaluate, evaluate_base and evaluate_task: lmms-eval on the base model or a trained
adapter (`prefalign.evaluation`)."""
from __future__ import annotations

from pathlib import Path

from ..data import check_world_file
from ..evaluation import evaluate_to
from ..settings import EvaluationSettings


def evaluate(*, model_dir, adapter_dir, world_dir, out_dir, evaluation: EvaluationSettings, device: str,
             dtype: str) -> None:
    """`world_dir`: the miniature's benchmarks live in its `eval/` (None for the real ones)."""
    if world_dir:  # lmms-eval reads them itself: checked against the world's manifest first
        for path in sorted((Path(world_dir) / "eval").glob("*.parquet")):
            check_world_file(path)
    evaluate_to(out_dir, model_path=str(model_dir), adapter=str(adapter_dir) if adapter_dir else None,
                tasks=evaluation.tasks, data_dir=Path(world_dir) / "eval" if world_dir else None,
                limit=evaluation.limit, model_name=evaluation.model, dtype=dtype, device=device,
                judge_tasks=evaluation.judge_tasks, model_args=evaluation.model_args,
                batch_size=evaluation.batch_size)

