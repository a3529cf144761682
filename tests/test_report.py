"""The Snakemake report of the micro run (`make report`): every table, plot and page in it, with
its caption and category; and the pages themselves."""
import base64
import json
import re

import pandas as pd
from test_workflow import ROOT, run

from prefalign.report_pages import choose_items, markdown_page


def report_results(path) -> tuple[dict, dict]:
    """(results, categories) as the report's page embeds them."""
    text = path.read_text()
    found = [json.loads(re.search(rf"var {name} = (\{{.*?\}});\n", text, re.S).group(1))
             for name in ("results", "categories")]
    return found[0], found[1]


def test_report_holds_the_tables_and_every_figure(micro_run, tmp_path):
    results, args, out = micro_run
    assert out.returncode == 0
    report = tmp_path / "report.html"
    made = run(args + ["--report", str(report)], ROOT)
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    entries, categories = report_results(report)
    shown = {p.removeprefix(f"{results}/"): e for p, e in entries.items()}
    expected = ["report/tables/main.html", "report/tables/deltas.html", "tables/deltas.png", "tables/main.png",
                "tables/label_accuracy_vs_gain.png", "report/tables/label_accuracy.html",
                "report/tables/study_seva_aspo.html", "report/training_curves.png", "report/competence.png",
                "report/gallery.html", "seed1/train/oracle/curves.png", "seed1/augment/seva.noise800.png",
                "report/tables/aspo_figure3.html", "tables/aspo_figure3.png", "tables/aspo_figure3.training.png"]
    assert set(expected) <= set(shown), sorted(set(expected) - set(shown))
    for name, entry in shown.items():
        assert entry["caption"].strip(), name  # every result says what it is
        data = base64.b64decode(entry["data_uri"].split("base64,", 1)[1])
        assert data == (results / name).read_bytes(), name
    assert {f"{results}/tables/aspo_figure3.png", f"{results}/tables/aspo_figure3.training.png"} <= set(
        categories["8 Paper tables"]["figures"])
    results_category = set(categories["1 Results"]["Other"])
    assert {f"{results}/report/tables/main.html", f"{results}/tables/deltas.png"} <= results_category
    # the captions' templates were filled in from the job (a run's objective, a view's name)
    caption = shown["seed1/train/oracle/curves.png"]["caption"].replace("\n", " ")
    assert 'objective <tt class="docutils literal">dpo</tt>' in caption
    # the main table's page holds the table's rows
    main = base64.b64decode(shown["report/tables/main.html"]["data_uri"].split("base64,", 1)[1]).decode()
    for label in pd.read_csv(results / "tables/main.csv").model:
        assert f"<td>{label}</td>" in main.replace("&#x27;", "'"), label
    # the gallery: every benchmark, base and each main run's first seed, images inline
    gallery = (results / "report/gallery.html").read_text()
    assert all(f"<h2>{task}</h2>" in gallery for task in ("pope", "vqa", "describe"))
    assert "<th>base</th>" in gallery and "<th>control: oracle (seed 1)</th>" in gallery
    items = [min(8, len(pd.read_parquet(results / f"world/eval/{t}.parquet"))) for t in ("pope", "vqa", "describe")]
    assert gallery.count("data:image/png;base64,") == sum(items)


def test_markdown_page_renders_headings_notes_and_tables_and_marks_excluding_intervals():
    text = ("# Difference vs base\n\nMean minus base; `*` marks an interval\nthat excludes 0.\n\n"
            "| run | POPE acc |\n|---|---|\n| oracle | +1.7 [+0.8, +2.7]* |\n| a<b | +0.1 [-0.5, +0.7] |\n")
    page = markdown_page(text)
    assert "<title>Difference vs base</title>" in page and "<h1>Difference vs base</h1>" in page
    assert "<p>Mean minus base; <code>*</code> marks an interval<br>that excludes 0.</p>" in page
    assert "<tr><th>run</th><th>POPE acc</th></tr>" in page
    assert '<td class="excludes-zero">+1.7 [+0.8, +2.7]*</td>' in page
    assert "<td>a&lt;b</td><td>+0.1 [-0.5, +0.7]</td>" in page  # escaped; no mark without the star


def test_gallery_draws_items_where_runs_differ_first():
    samples = {"base": {f"i{k}": {"response": ["no"]} for k in range(10)},
               "run": {f"i{k}": {"response": ["yes" if k in (3, 7) else "no"]} for k in range(10)}}
    chosen = choose_items(samples, [f"i{k}" for k in range(10)], 4, seed=0)
    assert set(chosen[:2]) == {"i3", "i7"} and len(set(chosen)) == 4
    assert chosen == choose_items(samples, [f"i{k}" for k in range(10)], 4, seed=0)
