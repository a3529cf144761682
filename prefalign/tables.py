"""Aggregate evaluation results into comparison tables and plots.

Every figure is a mean over seeds with a percentile bootstrap interval. The bootstrap is
hierarchical: resample seeds, then evaluation items within each seed, and recompute the
benchmark's own aggregate (so F1 and CHAIR are bootstrapped as the metrics they are).
"""
from __future__ import annotations

import logging
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from .io import read_json, read_jsonl
from .metrics import METRICS, mean_of, ratio
from .scoring import correctness
from .settings import TablesSettings

log = logging.getLogger(__name__)
Samples = dict[str, list[dict]]  # one evaluation's sample rows by task (`load_samples`)


@lru_cache(maxsize=8)
def hierarchical_draws(lengths: tuple[int, ...], n: int, seed: int) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """The resamples of `hierarchical_bootstrap` over seeds of these item counts, made once per
    shape (every metric and run over the same items shares them). Resample b draws len(lengths)
    seeds, then each drawn seed's items; returned per slot j of a resample and per seed s: the
    resamples whose slot j drew s, and their item counts [resamples, items_s]."""
    rng = np.random.default_rng(seed)
    k = len(lengths)
    dtype = np.uint16 if max(lengths) < 1 << 16 else np.uint32
    picks, counts = np.empty((n, k), dtype=np.int64), [[] for _ in range(k)]
    for b in range(n):
        picks[b] = rng.integers(k, size=k)
        for j, s in enumerate(picks[b]):
            counts[j].append(np.bincount(rng.integers(lengths[s], size=lengths[s]), minlength=lengths[s]).astype(dtype))
    draws = []
    for j in range(k):
        rows = [np.flatnonzero(picks[:, j] == s) for s in range(k)]
        draws.append([(r, np.array([counts[j][b] for b in r], dtype=dtype).reshape(len(r), lengths[s]))
                      for s, r in enumerate(rows)])
    return draws


def hierarchical_bootstrap(per_seed: list[np.ndarray], combine, n: int, confidence: float, seed: int = 0):
    """(mean, low, high) of the mean over seeds of `combine(column sums)`, resampling seeds, then
    items within each drawn seed (a seed drawn twice gets two item resamples). `per_seed`: one
    [items, k] matrix of per-item summands per seed (`metrics.SumMetric.matrix`); a resample of
    items is a vector of counts, so a slot's values are one matrix product per seed."""
    point = float(np.mean([combine(m.sum(0)) for m in per_seed]))
    stats = np.zeros(n)
    for slot in hierarchical_draws(tuple(len(m) for m in per_seed), n, seed):
        values = np.empty(n)
        for (rows, counts), m in zip(slot, per_seed):
            values[rows] = combine(counts.astype(np.float64) @ m)
        stats += values
    stats /= len(per_seed)
    a = (1 - confidence) / 2
    return point, float(np.nanquantile(stats, a)), float(np.nanquantile(stats, 1 - a))


def mean_and_interval(per_seed: list[list[float]], tcfg: TablesSettings) -> tuple[float, float, float]:
    """hierarchical_bootstrap of the mean of one number per item."""
    return hierarchical_bootstrap([np.c_[np.asarray(v, dtype=np.float64), np.ones(len(v))] for v in per_seed],
                                  ratio, tcfg.bootstrap_samples, tcfg.confidence)


def fmt(point, low, high, scale: float = 100) -> str:
    return f"{scale * point:.1f} [{scale * low:.1f}, {scale * high:.1f}]"


def load_samples(eval_dir) -> Samples:
    by_task: dict[str, list[dict]] = {}
    for r in read_jsonl(Path(eval_dir) / "samples.jsonl", finite=False):  # as evaluation.read_evaluation
        by_task.setdefault(r["task"], []).append(r)
    return by_task


def main_table(models: dict[str, list[Samples]], labels: dict[str, str], tcfg: TablesSettings,
               metrics=METRICS) -> pd.DataFrame:
    """models: row name -> its evaluations' samples (`load_samples`, one per seed); one column
    per metric (with its interval)."""
    rows = []
    for name, samples in models.items():
        row = {"model": labels.get(name, name), "seeds": len(samples)}
        for m in metrics:
            if m.task not in samples[0]:
                continue
            p, lo, hi = hierarchical_bootstrap([m.matrix(s[m.task]) for s in samples], m.combine,
                                               tcfg.bootstrap_samples, tcfg.confidence)
            row[m.column], row[m.column + " low"], row[m.column + " high"] = p, lo, hi
        rows.append(row)
    return pd.DataFrame(rows)


def ground_truth_scores(rec: dict, answers: dict) -> list[list[float]] | None:
    """Correctness of every response of a record, group by group; None where its item has no
    ground truth (a released set's records come from the SFT split, not the pool)."""
    gt = answers.get(rec["id"].split("#")[0])
    if gt is None:
        return None
    return [[correctness(gt["family"], r["text"], gt["answer"], gt["scene"]) for r in g] for g in rec["groups"]]


def average_ranks(values: list[float]) -> list[float]:
    """1-based ranks, ties sharing their mean rank (as scipy.stats.rankdata's 'average')."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for k in order[start:end + 1]:
            ranks[k] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def rank_correlation(scores: list[list[float]]) -> float | None:
    """Spearman correlation between the record's ranking (group order, ties within a group)
    and ground-truth correctness over all its responses; None where either is constant.
    Pearson's correlation of average ranks, in plain Python: a record holds a few responses,
    where scipy's spearmanr takes 0.28 ms a record and this 0.015 (3x3 records, this CPU)."""
    rank = [-g for g, group in enumerate(scores) for _ in group]
    truth = [x for group in scores for x in group]
    if len(set(truth)) < 2 or len(set(rank)) < 2:
        return None
    x, y = average_ranks(rank), average_ranks(truth)
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    return sxy / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))


def ranked_pair_outcomes(scores: list[list[float]]):
    """(better group, worse group, outcome) for every pair of responses in different groups;
    outcome is +1 when the better-ranked response is more correct, 0 on a tie, -1 reversed."""
    for i, j in ((i, j) for i in range(len(scores)) for j in range(i + 1, len(scores))):
        for a in scores[i]:
            for b in scores[j]:
                yield i, j, (a > b) - (a < b)


def label_accuracy(pref_files: dict[str, list[str]], answers_path,
                   tcfg: TablesSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """How often a preference set ranks the more correct response higher.

    Over every pair of responses in different groups (a SeVa record is one pair; an SMPRO
    record of 3x3 has 27). Correctness comes from the world's ground truth, which no method
    may read; only the miniature can measure this. Returns the overall table and the
    breakdown per pair of groups (G1 vs G2, G1 vs G3, ...). Spearman: per record, between
    its ranking and correctness (ConSR reports a median of 0.448 against GPT-4 rankings),
    over records where both vary. Records whose item has no ground truth are left out,
    counted in the log; a set with none that has it gets no row."""
    answers = read_json(answers_path)
    rows, by_groups = [], []
    for name, files in pref_files.items():
        per_seed, outcomes_all, pairs, rhos = [], [], {}, []
        for f in files:
            outcomes, unknown, records = [], 0, 0
            for records, rec in enumerate(read_jsonl(f), 1):
                scores = ground_truth_scores(rec, answers)
                if scores is None:
                    unknown += 1
                    continue
                rho = rank_correlation(scores)
                if rho is not None:
                    rhos.append(rho)
                for i, j, o in ranked_pair_outcomes(scores):
                    outcomes.append(float(o > 0))
                    outcomes_all.append(o)
                    pairs.setdefault((i, j), []).append(o)
            if unknown:
                log.warning("label accuracy of %s: %d of %d records in %s have no ground truth in %s "
                            "(items outside the world's pool), left out", name, unknown, records, f,
                            answers_path)
            if outcomes:
                per_seed.append(outcomes)
        if not outcomes_all:
            continue
        p, lo, hi = mean_and_interval(per_seed, tcfg)
        o = np.array(outcomes_all)
        rows.append({"preference set": name, "pairs": len(o), "label accuracy": p,
                     "label accuracy low": lo, "label accuracy high": hi,
                     "ties": float(np.mean(o == 0)), "reversed": float(np.mean(o < 0)),
                     "Spearman median": float(np.median(rhos)) if rhos else float("nan"),
                     "Spearman mean": float(np.mean(rhos)) if rhos else float("nan"),
                     "records with Spearman": len(rhos)})
        for (i, j), os_ in sorted(pairs.items()):
            os_ = np.array(os_)
            by_groups.append({"preference set": name, "groups": f"G{i + 1} > G{j + 1}", "pairs": len(os_),
                              "more correct": float(np.mean(os_ > 0)), "ties": float(np.mean(os_ == 0)),
                              "reversed": float(np.mean(os_ < 0))})
    return pd.DataFrame(rows), pd.DataFrame(by_groups)


def mattr(words: list[str], window: int) -> float:
    """Moving-average type-token ratio (Covington & McFall 2010); TTR when shorter than the window."""
    if not words:
        return 0.0
    if len(words) <= window:
        return len(set(words)) / len(words)
    return float(np.mean([len(set(words[k:k + window])) / window for k in range(len(words) - window + 1)]))


def words(text: str) -> list[str]:
    return text.lower().split()


def diversity(sets: dict[str, list[str]], window: int, tcfg: TablesSettings) -> pd.DataFrame:
    """MATTR of each prompt's sampled responses taken together (the diversity a group's
    samples have), mean over prompts and seeds with a bootstrap interval. Shorter than the
    window this is the type-token ratio, which falls with length; the corpus column (all
    responses of a seed in prompt order, fixed window) does not have that bias."""
    rows = []
    for label, files in sets.items():
        recs = [read_jsonl(f) for f in files]
        per_seed = [[{"mattr": mattr([w for r in rec["responses"] for w in words(r["text"])], window),
                      "words": np.mean([len(r["text"].split()) for r in rec["responses"]])}
                     for rec in seed] for seed in recs]
        corpus = np.mean([mattr([w for rec in seed for r in rec["responses"] for w in words(r["text"])], window)
                          for seed in recs])
        p, lo, hi = mean_and_interval([[r["mattr"] for r in s] for s in per_seed], tcfg)
        rows.append({"responses": label, "prompts": sum(len(s) for s in per_seed), f"MATTR-{window}": p,
                     f"MATTR-{window} low": lo, f"MATTR-{window} high": hi,
                     f"corpus MATTR-{window} (%)": 100 * float(corpus),
                     "words per response": float(np.mean([r["words"] for s in per_seed for r in s]))})
    df = pd.DataFrame(rows)
    if len(df):
        df["change vs first (%)"] = (df[f"MATTR-{window}"] / df[f"MATTR-{window}"].iloc[0] - 1) * 100
    return df


PERCENT_COLUMNS = ("ties", "reversed", "more correct")


def response_lengths(models: dict[str, list[Samples]], labels: dict[str, str], tasks,
                     tcfg: TablesSettings) -> pd.DataFrame:
    """Mean words per response on each benchmark, base and every run (ConSR's length-bias
    claim: DPO lengthens answers, its length normalisation curbs that)."""
    return main_table(models, labels, tcfg, [mean_of(t, "words", f"{t.removeprefix('prefalign_')} words",
                                                     lambda r: len(words(r["response"][0]))) for t in tasks])


def preference_counts(stats_files: list) -> pd.DataFrame:
    """One row per preference set and seed: the prompts it was built from, the records kept and
    the prompts rejected, by reason (build_preferences checks that they add up)."""
    rows = []
    for path in sorted(stats_files):
        path = Path(path)  # {results}/seed{S}/preferences/{set}.stats.json
        stats = read_json(path)
        rows.append({"preference set": path.name.removesuffix(".stats.json"),
                     "seed": int(path.parent.parent.name.removeprefix("seed")), "prompts": stats["prompts"],
                     "kept": stats["kept"], "rejected": sum(stats["rejected"].values()),
                     "reasons": "; ".join(f"{k} {v}" for k, v in stats["rejected"].items() if v) or "-"})
    return pd.DataFrame(rows, columns=["preference set", "seed", "prompts", "kept", "rejected", "reasons"])


def to_markdown(df: pd.DataFrame, title: str, note: str = "", scale: float = 100) -> str:
    """Render 'X', 'X low', 'X high' column triples as 'mean [low, high]' (times `scale`)."""
    cols = [c for c in df.columns if not c.endswith(" low") and not c.endswith(" high")]
    out = [f"# {title}", ""]
    if note:
        out += [note, ""]
    out.append("| " + " | ".join(cols) + " |")
    out.append("|" + "---|" * len(cols))
    for _, r in df.iterrows():
        cells = []
        for c in cols:
            if f"{c} low" in df.columns:
                cells.append(fmt(r[c], r[f"{c} low"], r[f"{c} high"], scale))
            elif isinstance(r[c], float):
                cells.append(f"{100 * r[c]:.1f}" if c in PERCENT_COLUMNS else f"{r[c]:.2f}")
            else:
                cells.append(str(r[c]))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def write_table(out_dir: Path, name: str, df: pd.DataFrame, title: str, note: str, scale: float = 100,
                shown: pd.Series | None = None) -> None:
    """The table as CSV (every row) and markdown (the `shown` rows, where given)."""
    from .io import atomic_path

    with atomic_path(out_dir / f"{name}.csv") as tmp:
        df.to_csv(tmp, index=False, float_format="%.6f")
    with atomic_path(out_dir / f"{name}.md") as tmp:
        tmp.write_text(to_markdown(df if shown is None else df[shown], title, note, scale))


def pairs_with_the_top_group(by_groups: pd.DataFrame, most_groups: int = 5) -> pd.Series:
    """Rows to print of a per-group-pair table: every pair for a set of up to `most_groups`
    groups; for a longer ranking (ConSR's 15 candidates make 105 pairs) the pairs of G1."""
    if by_groups.empty:
        return pd.Series(dtype=bool)
    last = by_groups["groups"].str.extract(r"> G(\d+)$")[0].astype(int)
    longest = last.groupby(by_groups["preference set"]).transform("max")
    return (longest <= most_groups) | by_groups["groups"].str.startswith("G1 >")


def measured_value(eval_dir, task: str, metric: str):
    """(value in the papers' units, or None; skip reason or None) of one task in one eval dir."""
    eval_dir = Path(eval_dir)
    skipped = read_json(eval_dir / "skipped.json") if (eval_dir / "skipped.json").exists() else {}
    if task in skipped:
        return None, skipped[task]
    results = read_json(eval_dir / "results.json").get(task, {})
    key = next((k for k in results if k.split(",")[0] == metric), None)
    if key is None or not isinstance(results[key], (int, float)):
        return None, f"no '{metric}' in results.json"
    value = float(results[key])
    # lmms-eval reports accuracies as fractions; the papers print percent (MME is a score)
    return (100 * value if value <= 1.0 and task != "mme" else value), None


def benchmark_table(models: dict[str, list[str]], labels: dict[str, str], tasks: list[str],
                    reported: dict | None = None) -> tuple[pd.DataFrame, str]:
    """The papers' benchmarks per model (mean over seeds), with the paper's reported row and
    the difference beside every mapped row. Returns the table and its note."""
    from .config import reported_sections
    from .evaluation import benchmark_info

    info = benchmark_info()
    paper = reported_sections()[reported["paper"]] if reported else {}
    rows = []
    for name, dirs in models.items():
        row, values = {"model": labels.get(name, name), "seeds": len(dirs)}, {}
        for t in tasks:
            got = [measured_value(d, t, info.get(t, {}).get("metric", t)) for d in dirs]
            nums = [v for v, _ in got if v is not None]
            values[t] = float(np.mean(nums)) if len(nums) == len(got) else None
            row[t] = f"{values[t]:.1f}" if values[t] is not None else next(why for _, why in got if why)
        rows.append(row)
        target = (reported or {}).get("rows", {}).get(name)
        if target:
            ref = paper["rows"][target]
            rows.append({"model": f"  reported: {target}", "seeds": "",
                         **{t: "-" if ref.get(t) is None else f"{ref[t]:.1f}" for t in tasks}})
            rows.append({"model": "  measured - reported", "seeds": "",
                         **{t: f"{values[t] - ref[t]:+.1f}" if values[t] is not None and ref.get(t) is not None
                            else "-" for t in tasks}})
    note = "Headline metric per task (prefalign/benchmarks.yaml), mean over seeds; accuracies in percent."
    if paper:
        note += f" Reported numbers: {paper['source']}." + (f" {paper['note']}" if paper.get("note") else "")
    return pd.DataFrame(rows), note
