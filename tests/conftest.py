import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest  # noqa: E402

from prefalign.data import set_world_dir  # noqa: E402
from prefalign.world import WorldSpec  # noqa: E402
from prefalign.world_build import build_world  # noqa: E402


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world") / "world"
    build_world(out, 0, WorldSpec(), 60, 30, {"pope": 12, "vqa": 10, "describe": 4}, progress=False)
    set_world_dir(out)  # what a job's setup does: records' "{world}/..." images are read here
    return out


@pytest.fixture(scope="session")
def tiny_model(small_world):
    """A random-weight tiny LLaVA with the world's tokenizer (no training)."""
    from prefalign.stages.train_base_model import world_corpus
    from prefalign.tiny_vlm import build_tiny_llava

    return build_tiny_llava(world_corpus(small_world), 30, 10,
                            dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2),
                            dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                 num_key_value_heads=2, max_position_embeddings=256, initializer_range=0.1), 0)


@pytest.fixture(scope="session")
def micro_run(tmp_path_factory):
    """The whole micro DAG run locally once (test_workflow checks it; test_slurm compares the
    cluster's run with it): (results folder, snakemake arguments, completed process)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    results = tmp_path_factory.mktemp("micro") / "results"
    # one thread per job, two jobs at a time: the micro jobs' time is mostly imports, which one
    # thread does as fast (5.4 instead of 8.3 minutes here); threads change float sums, so a
    # run compared with this one (test_slurm) takes the same --max-threads
    args = ["-s", str(root / "Snakefile"), "--directory", str(root), "-c2", "--max-threads", "1",
            "--configfile", str(root / "tests/configs/micro.yaml"), "--config", f"results={results}"]
    # as `make reproduce` runs it: jobs in forks of one process that has their imports
    out = subprocess.run([sys.executable, "-m", "prefalign.forkserver", "--", sys.executable, "-m", "snakemake", *args],
                         cwd=root, capture_output=True, text=True,
                         timeout=1200, env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    return results, args, out
