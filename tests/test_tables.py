import math

import numpy as np
import pandas as pd
import pytest

from prefalign.lmms_tasks.utils import chair_i, pope_f1
from prefalign.metrics import METRICS, mean_of
from prefalign.tables import hierarchical_bootstrap, to_markdown


def rows_bootstrap(per_seed: list[list], aggregate, n: int, confidence: float, seed: int = 0):
    """The bootstrap as first written, over rows and an aggregate of rows (the reference)."""
    point = float(np.mean([aggregate(rows) for rows in per_seed]))
    rng = np.random.default_rng(seed)
    stats = np.empty(n)
    for b in range(n):
        picks = rng.integers(len(per_seed), size=len(per_seed))
        stats[b] = np.mean([aggregate([per_seed[s][i] for i in rng.integers(len(per_seed[s]), size=len(per_seed[s]))])
                            for s in picks])
    a = (1 - confidence) / 2
    return point, float(np.nanquantile(stats, a)), float(np.nanquantile(stats, 1 - a))


SCORE = mean_of("t", "score", "score", lambda r: r["score"])


def test_point_is_mean_over_seeds_and_interval_contains_it():
    seeds = [[{"score": 1.0}] * 30 + [{"score": 0.0}] * 10, [{"score": 1.0}] * 20 + [{"score": 0.0}] * 20]
    p, lo, hi = hierarchical_bootstrap([SCORE.matrix(s) for s in seeds], SCORE.combine, 500, 0.95)
    assert p == (0.75 + 0.5) / 2
    assert lo < p < hi and lo >= 0.4 and hi <= 0.85


def test_interval_collapses_without_variation():
    rows = [{"score": 1.0}] * 10
    assert hierarchical_bootstrap([SCORE.matrix(rows)] * 2, SCORE.combine, 100, 0.95) == (1.0, 1.0, 1.0)


def test_each_metric_and_its_bootstrap_equal_the_lmms_task_aggregate_over_resampled_rows():
    """The sums-and-counts bootstrap draws the resamples the row bootstrap draws, and every
    metric on a resample equals the benchmark task's own aggregate of those rows."""
    rng = np.random.default_rng(3)
    types = ["random", "popular", "adversarial"]

    def pope(k):
        return [{"score": float(rng.random() < 0.8), "prediction": str(rng.choice(["yes", "no", "other"])),
                 "answer": str(rng.choice(["yes", "no"])), "pope_type": types[i % 3]} for i in range(k)]

    def describe(k):
        return [{"mentions": int(m), "hallucinated": int(rng.integers(0, m + 1)), "objects": 3,
                 "recalled": int(rng.integers(0, 4))} for m in rng.integers(0, 4, size=k)]
    from prefalign.lmms_tasks import utils as task

    reference = {"pope_accuracy": task.pope_accuracy, "pope_f1": task.pope_f1, "pope_yes_ratio": task.pope_yes_ratio,
                 "exact_match": task.mean_score, "chair_i": task.chair_i, "chair_s": task.chair_s,
                 "object_recall": task.object_recall,
                 **{f"pope_accuracy_{t}": lambda rows, t=t: task.pope_accuracy([r for r in rows if r["pope_type"] == t])
                    for t in types}}
    seeds = {"prefalign_pope": [pope(90), pope(60)], "prefalign_vqa": [pope(50), pope(70)],
             "prefalign_describe": [describe(40), describe(30)]}
    for m in METRICS:
        rows = seeds[m.task]
        ours = hierarchical_bootstrap([m.matrix(r) for r in rows], m.combine, 200, 0.9, seed=5)
        theirs = rows_bootstrap(rows, reference[m.metric], 200, 0.9, seed=5)
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12, err_msg=m.metric)
    # three seeds: most resamples draw a seed twice, each time with its own items
    rows = [pope(90), pope(60), pope(75)]
    m = METRICS[0]
    np.testing.assert_allclose(hierarchical_bootstrap([m.matrix(r) for r in rows], m.combine, 200, 0.9, seed=5),
                               rows_bootstrap(rows, reference[m.metric], 200, 0.9, seed=5), rtol=1e-12, atol=1e-12)


def test_benchmark_aggregates():
    rows = [{"prediction": "yes", "answer": "yes"}, {"prediction": "yes", "answer": "no"},
            {"prediction": "no", "answer": "yes"}, {"prediction": "other", "answer": "no"}]
    assert pope_f1(rows) == 0.5  # precision 1/2, recall 1/2
    assert chair_i([{"mentions": 4, "hallucinated": 1}, {"mentions": 0, "hallucinated": 0}]) == 0.25


def test_markdown_renders_intervals_in_percent():
    df = pd.DataFrame([{"model": "base", "acc": 0.5, "acc low": 0.4, "acc high": 0.6}])
    assert "| base | 50.0 [40.0, 60.0] |" in to_markdown(df, "t")


def test_mattr_by_hand():
    from prefalign.tables import mattr

    assert mattr("a b a c".split(), 50) == 3 / 4  # shorter than the window: TTR
    # windows of 3 over a b a c a: {a,b}, {a,b,c}, {a,c} -> (2 + 3 + 2) / 9
    assert mattr("a b a c a".split(), 3) == (2 / 3 + 3 / 3 + 2 / 3) / 3


def test_ranked_pair_outcomes_cover_every_cross_group_pair():
    from prefalign.tables import ground_truth_scores, rank_correlation, ranked_pair_outcomes

    scene = {"objects": [{"shape": "circle", "colour": "red", "size": "small", "cell": 0}], "sign": None}
    answers = {"p1": {"family": "colour", "answer": "red", "scene": scene}}
    rec = {"id": "p1#0", "groups": [[{"text": "red"}, {"text": "blue"}], [{"text": "blue"}], [{"text": "red"}]]}
    scores = ground_truth_scores(rec, answers)
    assert scores == [[1.0, 0.0], [0.0], [1.0]]
    out = list(ranked_pair_outcomes(scores))
    assert out == [(0, 1, 1), (0, 1, 0), (0, 2, 0), (0, 2, -1), (1, 2, -1)]
    # Spearman of ranks (0, 0, -1, -2) against truth (1, 0, 0, 1), by hand: ranks of the ranking
    # (3.5, 3.5, 2, 1), of the truth (3.5, 1.5, 1.5, 3.5); deviations (1, 1, -.5, -1.5) and
    # (1, -1, -1, 1): Pearson = -1 / sqrt(4.5 * 4).
    assert rank_correlation(scores) == pytest.approx(-1 / 18 ** 0.5)
    assert rank_correlation([[1.0], [0.5], [0.0]]) == pytest.approx(1.0)
    assert rank_correlation([[0.0], [1.0]]) == pytest.approx(-1.0)
    assert rank_correlation([[1.0, 1.0], [1.0]]) is None  # correctness constant: undefined
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    for _ in range(200):  # against scipy's, on random rankings of up to 5 groups of up to 4 with ties
        scores = [list(rng.integers(0, 3, size=rng.integers(1, 5)) / 2) for _ in range(rng.integers(2, 6))]
        rank = [-g for g, group in enumerate(scores) for _ in group]
        truth = [x for group in scores for x in group]
        expected = None if len(set(truth)) < 2 else spearmanr(rank, truth).statistic
        assert rank_correlation(scores) == (None if expected is None else pytest.approx(expected, abs=1e-12))


def test_label_accuracy_counts_records_without_ground_truth_and_leaves_them_out(tmp_path, caplog):
    """A released set's records (POVID's stand-in: the SFT split's items) have no pool answers;
    they are left out with a warning naming the set, the count and the file, not a KeyError."""
    import json
    from pathlib import Path

    from prefalign.settings import TablesSettings
    from prefalign.tables import label_accuracy

    scene = {"objects": [{"shape": "circle", "colour": "red", "size": "small", "cell": 0}], "sign": None}
    answers = tmp_path / "pool_answers.json"
    answers.write_text(json.dumps({"p1": {"family": "colour", "answer": "red", "scene": scene}}))
    pair = [[{"text": "red"}], [{"text": "blue"}]]
    files, sets = {}, {"pool": ["p1#0", "p1#1"], "mixed": ["p1#0", "sft_1#0", "sft_2#0"], "released": ["sft_1#0"]}
    for name, ids in sets.items():
        files[name] = [str(tmp_path / f"{name}.jsonl")]
        Path(files[name][0]).write_text("".join(json.dumps({"id": i, "groups": pair}) + "\n" for i in ids))
    tcfg = TablesSettings.from_partial({"bootstrap_samples": 10, "confidence": 0.95})
    with caplog.at_level("WARNING", logger="prefalign.tables"):
        overall, by_groups = label_accuracy(files, answers, tcfg)
    table = overall.set_index("preference set")
    assert list(table.index) == ["pool", "mixed"]
    assert table.loc["pool", "pairs"] == 2 and table.loc["mixed", "pairs"] == 1
    assert table.loc["mixed", "label accuracy"] == 1.0
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2
    assert "mixed: 2 of 3 records" in warned[0] and files["mixed"][0] in warned[0]
    assert "released: 1 of 1 records" in warned[1]


def _eval_dir(path, results, skipped):
    import json

    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps(results))
    (path / "skipped.json").write_text(json.dumps(skipped))
    return str(path)


def test_benchmark_table_with_reported_numbers_and_skipped_judge_tasks(tmp_path):
    from prefalign.tables import benchmark_table

    skip = {"mmvet": "skipped: needs a GPT judge and OPENAI_API_KEY is not set"}
    base = _eval_dir(tmp_path / "base", {"pope": {"pope_accuracy,none": 0.859, "alias": "pope"},
                                         "mme": {"mme_perception_score,none": 1500.0}}, skip)
    runs = [_eval_dir(tmp_path / f"s{k}", {"pope": {"pope_accuracy,none": v},
                                           "mme": {"mme_perception_score,none": 1490.0}}, skip)
            for k, v in ((1, 0.86), (2, 0.88))]
    df, note = benchmark_table({"base": [base], "seva_n500": runs}, {"seva_n500": "SeVa"}, ["pope", "mme", "mmvet"],
                               {"paper": "seva", "rows": {"base": "LLaVA-1.5-7B", "seva_n500": "SeVa-7B"}})
    rows = df.set_index("model")
    assert rows.loc["base", "pope"] == "85.9" and rows.loc["base", "mme"] == "1500.0"  # MME is a score
    assert rows.loc["base", "mmvet"] == skip["mmvet"]  # listed, never dropped
    assert rows.loc["SeVa", "pope"] == "87.0"  # mean over seeds
    assert list(df.model) == ["base", "  reported: LLaVA-1.5-7B", "  measured - reported",
                              "SeVa", "  reported: SeVa-7B", "  measured - reported"]
    assert df.iloc[2]["pope"] == "+0.0" and df.iloc[5]["pope"] == "+0.3" and df.iloc[5]["mme"] == "-"
    assert "SeVa (Zhu et al. 2024) Table 2" in note
    # a real config's figure: the measured rows as bars, the reported rows and skipped tasks left out
    from prefalign.plots import benchmark_table_figure

    fig = benchmark_table_figure(df, ["pope", "mme", "mmvet"])
    heights = [[round(b.get_height(), 3) for b in ax.patches] for ax in fig.axes]
    assert heights[:2] == [[85.9, 87.0], [1500.0, 1490.0]] and all(math.isnan(h) for h in heights[2])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["base", "SeVa"]


def test_judge_tasks_are_skipped_only_without_an_api_key():
    from prefalign.evaluation import judge_skips

    tasks = ["pope", "mmvet", "llava_in_the_wild"]
    assert set(judge_skips(tasks, env={})) == {"mmvet", "llava_in_the_wild"}
    assert judge_skips(tasks, env={"OPENAI_API_KEY": "x"}) == {}
    assert set(judge_skips(tasks, judge_tasks=["pope"], env={})) == {"pope"}


def test_lmms_eval_models_get_only_the_arguments_they_take():
    from lmms_eval.models import get_model

    from prefalign.evaluation import model_kwargs

    assert model_kwargs(get_model("llava_hf"), "cpu", "float32", 1) == {"device": "cpu", "device_map": "cpu",
                                                                       "dtype": "float32", "batch_size": 1}
    assert model_kwargs(get_model("qwen2_5_vl"), "cuda", "bfloat16", 8) == {"device": "cuda", "device_map": "cuda",
                                                                           "batch_size": 8}


def test_long_rankings_print_the_pairs_of_the_top_group_only():
    import itertools

    from prefalign.tables import pairs_with_the_top_group

    rows = [{"preference set": name, "groups": f"G{i} > G{j}"}
            for name, k in (("three", 3), ("seven", 7)) for i, j in itertools.combinations(range(1, k + 1), 2)]
    df = pd.DataFrame(rows)
    shown = df[pairs_with_the_top_group(df)]
    assert (shown["preference set"] == "three").sum() == 3
    assert shown[shown["preference set"] == "seven"]["groups"].tolist() == [f"G1 > G{j}" for j in range(2, 8)]


def test_a_real_paper_table_prints_its_own_reported_numbers_and_its_figure(tmp_path):
    """A paper table's `reported:` replaces the config's `tables.reported` for that table; a
    real figure target also draws its measured values."""
    from prefalign.settings import PaperTableSettings, TablesSettings
    from prefalign.stages.paper_table import paper_table

    base = _eval_dir(tmp_path / "eval" / "base", {"pope": {"pope_accuracy,none": 0.859}}, {})
    run = _eval_dir(tmp_path / "eval" / "seva_r64.seed1", {"pope": {"pope_accuracy,none": 0.87}}, {})
    table = PaperTableSettings(title="LoRA rank", runs=["seva_r64"], columns=["pope"],
                               reported={"paper": "seva_table6", "rows": {"seva_r64": "r=64"}})
    tables = TablesSettings.from_partial({"bootstrap_samples": 10, "confidence": 0.95,
                                          "reported": {"paper": "seva", "rows": {"base": "LLaVA-1.5-7B"}}})
    log = tmp_path / "seed1" / "train" / "seva_r64" / "log.csv"
    log.parent.mkdir(parents=True)
    log.write_text("step,loss,rewards/margins\n0,0.69,0.0\n1,0.6,0.2\n2,0.5,0.4\n")
    paper_table(out_dir=tmp_path / "tables", name="seva_figure6", table=table, base_dir=base, run_dirs=[run],
                labels={"seva_r64": "r=64"}, tables=tables, tasks=["pope"], png=tmp_path / "tables" / "fig.png",
                training=(tmp_path / "tables" / "fig.training.png", [log]))
    md = (tmp_path / "tables" / "seva_figure6.md").read_text()
    assert "reported: r=64" in md and "86.5" in md and "SeVa Table 6" in md
    assert "LLaVA-1.5-7B" not in md  # the config-wide mapping does not apply to this table
    assert (tmp_path / "tables" / "fig.png").stat().st_size > 0
    from prefalign.stages.paper_table import run_logs

    logs = run_logs([log], {"seva_r64": "r=64"})  # what the training curves are drawn from
    assert list(logs) == [("r=64", 1)] and list(logs[("r=64", 1)]["rewards/margins"]) == [0.0, 0.2, 0.4]
    assert (tmp_path / "tables" / "fig.training.png").stat().st_size > 0
