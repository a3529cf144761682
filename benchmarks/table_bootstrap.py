"""The tables stage's hierarchical bootstrap: resampled items as counts against per-item sums
(`tables.hierarchical_bootstrap`) vs copying rows and aggregating them (the reference it
replaced, `tests/test_tables.py: rows_bootstrap`), side by side on the same synthetic rows.

    python benchmarks/table_bootstrap.py [--items 3000] [--seeds 2] [--resamples 1000]

Both draw the same resamples; the last column says whether the intervals agree to 1e-12.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_tables import rows_bootstrap  # noqa: E402

from prefalign.lmms_tasks import utils as task  # noqa: E402
from prefalign.metrics import METRICS  # noqa: E402
from prefalign.tables import hierarchical_bootstrap  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--items", type=int, default=3000)
parser.add_argument("--seeds", type=int, default=2)
parser.add_argument("--resamples", type=int, default=1000)
args = parser.parse_args()
rng = np.random.default_rng(0)
rows = [[{"score": float(rng.random() < 0.85), "prediction": str(rng.choice(["yes", "no"])),
          "answer": str(rng.choice(["yes", "no"])), "pope_type": "random"} for _ in range(args.items)]
        for _ in range(args.seeds)]
print(f"{'metric':<16} {'rows s':>7} {'counts s':>8} {'ratio':>6} same")
for metric, reference in ((METRICS[0], task.pope_accuracy), (METRICS[4], task.pope_f1)):
    start = time.perf_counter()
    old = rows_bootstrap(rows, reference, args.resamples, 0.95)
    t_rows = time.perf_counter() - start
    start = time.perf_counter()
    new = hierarchical_bootstrap([metric.matrix(r) for r in rows], metric.combine, args.resamples, 0.95)
    t_counts = time.perf_counter() - start
    same = np.allclose(old, new, atol=1e-12)
    print(f"{metric.metric:<16} {t_rows:7.2f} {t_counts:8.2f} {t_rows / t_counts:6.1f} {same}")
