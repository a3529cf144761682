"""Pages of the Snakemake report (rule report_pages): each table as HTML, and a gallery of the
same evaluation images with the base model's and each run's answers, graded against ground
truth (what the papers show as qualitative tables)."""
from __future__ import annotations

import base64
import html
import json
import random
import re

STYLE = """<style>
body { font-family: sans-serif; font-size: 13px; margin: 12px; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.excludes-zero { font-weight: bold; }
td.right { color: #17692c; } td.wrong { color: #a31515; }
img.scene { width: 96px; image-rendering: pixelated; }
code { background: #f4f4f4; }
</style>"""


def page(title: str, body: list[str]) -> str:
    return "\n".join(["<!DOCTYPE html>", "<html><head><meta charset=\"utf-8\">", f"<title>{html.escape(title)}</title>",
                      STYLE, "</head><body>", *body, "</body></html>", ""])


def inline(text: str) -> str:
    """Escaped text with markdown's `code` and **bold**."""
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)


def cell(text: str, tag: str) -> str:
    # the deltas table's `*`: an interval that excludes 0
    attribute = ' class="excludes-zero"' if tag == "td" and text.endswith("]*") else ""
    return f"<{tag}{attribute}>{inline(text)}</{tag}>"


def markdown_page(text: str) -> str:
    """The tables stage's markdown (headings, paragraphs, pipe tables) as a page."""
    body, paragraph, rows = [], [], []

    def flush():
        if paragraph:
            body.append("<p>" + "<br>".join(inline(x) for x in paragraph) + "</p>")
            paragraph.clear()
        if rows:
            cells = [[c.strip() for c in r.strip().strip("|").split("|")]
                     for r in rows if not re.fullmatch(r"\|[-|: ]+", r)]  # not the |---| line
            body.append("<table>" + "".join(
                "<tr>" + "".join(cell(c, "th" if k == 0 else "td") for c in cs) + "</tr>"
                for k, cs in enumerate(cells)) + "</table>")
            rows.clear()
    title = ""
    for line in text.splitlines():
        heading = re.match(r"(#+) (.*)", line)
        if heading:
            flush()
            level = len(heading.group(1))
            title = title or heading.group(2)
            body.append(f"<h{level}>{inline(heading.group(2))}</h{level}>")
        elif line.startswith("|"):
            if paragraph:
                flush()
            rows.append(line)
        elif line.strip():
            if rows:
                flush()
            paragraph.append(line)
        else:
            flush()
    flush()
    return page(title, body)


def answer_cell(task: str, sample: dict) -> str:
    """One model's answer to one item, graded: right / wrong for POPE and VQA; objects
    recalled and hallucinated for a description."""
    text = sample["response"][0] if sample.get("response") else ""
    if task == "describe":
        grade = f"recalls {sample['recalled']} of {sample['objects']}, {sample['hallucinated']} hallucinated"
        verdict = "right" if sample["recalled"] == sample["objects"] and not sample["hallucinated"] else "wrong"
    else:
        verdict = "right" if sample["score"] == 1 else "wrong"
        grade = "right" if verdict == "right" else "wrong"
    shown = html.escape(text) if text.strip() else "<i>(empty)</i>"
    return f"<td class=\"{verdict}\">{shown}<br><small>{grade}</small></td>"


def choose_items(samples: dict[str, dict[str, dict]], items: list[str], n: int, seed: int) -> list[str]:
    """`n` items, drawn with `seed`: first among those where some model's answer differs
    from the base model's, then among the rest."""
    def answers(item):
        return {json.dumps(s[item].get("response")) for s in samples.values()}
    differing = [i for i in items if len(answers(i)) > 1]
    rest = [i for i in items if len(answers(i)) == 1]
    rng = random.Random(seed)
    chosen = rng.sample(differing, min(n, len(differing)))
    return chosen + rng.sample(rest, min(n - len(chosen), len(rest)))


def gallery_page(benchmarks: dict, samples: dict[str, dict[str, dict]], labels: dict[str, str],
                 per_task: int, seed: int) -> str:
    """benchmarks: task ("pope", "vqa", "describe") -> its evaluation DataFrame (id, question,
    answer, pope_type, image bytes); samples: task -> model -> {item id -> graded sample}, "base"
    first."""
    body = ["<h1>The same images, answered by the base model and by each run (first seed)</h1>",
            f"<p>{per_task} items per benchmark, drawn with seed {seed}, first among the items where some "
            "run's answer differs from the base model's. Green: right against the world's ground truth; "
            "red: wrong. Descriptions: the objects of the scene named, and objects named that are not in it.</p>"]
    for task, df in benchmarks.items():
        df, models = df.set_index("id"), samples[task]
        present = [i for i in df.index if all(i in s for s in models.values())]
        chosen = choose_items(models, present, per_task, seed)
        body.append(f"<h2>{html.escape(task)}</h2><table><tr><th>image</th><th>question</th><th>truth</th>"
                    + "".join(f"<th>{html.escape(labels.get(m, m))}</th>" for m in models) + "</tr>")
        for item in sorted(chosen):
            row = df.loc[item]
            image = base64.b64encode(row["image"]).decode()
            split = f" <small>({row['pope_type']})</small>" if row.get("pope_type") else ""
            body.append(f"<tr><td><img class=\"scene\" src=\"data:image/png;base64,{image}\" alt=\"{item}\"><br>"
                        f"<small>{html.escape(item)}</small></td><td>{html.escape(row['question'])}{split}</td>"
                        f"<td>{html.escape(row['answer'])}</td>"
                        + "".join(answer_cell(task, s[item]) for s in models.values()) + "</tr>")
        body.append("</table>")
    return page("Gallery", body)
