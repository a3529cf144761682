"""benchmarks/gpu_check.py with its tiny flag on the CPU, in a Python that cannot import
anything the workflow installs beyond torch and transformers (as on a bare GPU machine)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# what the venv has and a bare GPU machine may lack; numpy, yaml, tokenizers and tqdm come with transformers
ABSENT = ["PIL", "peft", "lmms_eval", "snakemake", "jsonschema", "diffusers", "open_clip", "torchvision",
          "pandas", "matplotlib", "wandb", "scipy", "accelerate", "datasets"]
FLAGS = ["--size", "tiny", "--batch", "2", "--new-tokens", "4", "--response-tokens", "8", "--text-tokens", "8",
         "--steps", "1", "--items", "1"]


def test_gpu_check_runs_every_model_and_pass_with_torch_and_transformers_alone():
    prelude = (f"import sys, runpy; [sys.modules.__setitem__(m, None) for m in {ABSENT!r}]; "
               f"sys.argv = ['gpu_check.py', *{FLAGS!r}]; "
               "runpy.run_path('benchmarks/gpu_check.py', run_name='__main__')")
    out = subprocess.run([sys.executable, "-c", prelude], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| ") and "-reduced" in line]
    passes = ["sample 2 x 4", "score 1 x 2", "train dpo 1 x 2", "train mgp 1 x 9", "train aspo 1 x 2",
              "train consr 1 x 2"]
    for model in ["llava-1.5-7b", "llava-onevision-0.5b", "llava-onevision-7b", "qwen2.5-vl-7b"]:
        mine = [r.split(" | ")[1] for r in rows if r.startswith(f"| {model}-reduced |")]
        assert mine == passes, (model, mine)
    for r in rows:
        cells = r.strip("| ").split(" | ")
        assert float(cells[3]) > 0 and float(cells[4].replace(",", "")) > 0  # seconds, tokens/s
    assert "576 image tokens" in out.stdout and "2929 image tokens" in out.stdout and "391 image tokens" in out.stdout
