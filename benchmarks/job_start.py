"""The fixed cost of a workflow job: a script that imports what a model stage imports (torch,
transformers, peft, lmms-eval, the stage modules) and stops, run as its own interpreter and
handed to a prefalign.forkserver, side by side in one run.

    python benchmarks/job_start.py [--repeats 5]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from prefalign import forkserver

SCRIPT = """
from prefalign.stages import job
job.run_in_forkserver()
import lmms_eval.evaluator  # noqa: F401
import peft  # noqa: F401
import prefalign.stages.evaluate  # noqa: F401
import prefalign.stages.train  # noqa: F401
from transformers import AutoModelForImageTextToText, AutoProcessor  # noqa: F401
"""


def timed_runs(script: Path, env: dict, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run([sys.executable, str(script)], env=env, check=True)
        times.append(time.perf_counter() - t)
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as folder:
        script, sock = Path(folder) / "job.py", Path(folder) / "socket"
        script.write_text(SCRIPT)
        own = timed_runs(script, env, a.repeats)
        serve = f"from prefalign.forkserver import serve; serve({str(sock)!r})"
        server = subprocess.Popen([sys.executable, "-c", serve], env=env, stderr=subprocess.DEVNULL)
        while not sock.exists():
            if server.poll() is not None:
                sys.exit(f"the fork server exited ({server.returncode}) before listening")
            time.sleep(0.1)
        try:
            forked = timed_runs(script, {**env, forkserver.SOCKET_ENV: str(sock)}, a.repeats)
        finally:
            server.terminate()
            server.wait()
    own_s, forked_s = statistics.median(own), statistics.median(forked)
    print(f"job start, median of {a.repeats}: own interpreter {own_s:.2f} s, forkserver {forked_s:.2f} s, "
          f"ratio {own_s / forked_s:.1f}x")


if __name__ == "__main__":
    main()
