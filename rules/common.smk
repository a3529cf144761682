# Helpers shared by the stage rules: paths and config lookups.
import re
from pathlib import Path

from prefalign.config import validate_config
from prefalign.data import world_dir
from prefalign.evaluation import is_miniature
from prefalign.paper_tables import paper_of
from prefalign.provenance import (
    GLOBAL as GLOBAL_SETTINGS,
    canonical,
    closure,
    run_order,
    upstream,
    OWN_RULE_ONLY,
)

validate_config(config)  # the schema, the cross-references it cannot express, every default

R = config["results"]
WORLD = str(world_dir(R))
SEEDS = config["seeds"]
RUNS = list(config["runs"])


wildcard_constraints:
    seed=r"\d+",
    pset=r"[A-Za-z0-9_\-]+",
    view=r"[A-Za-z0-9_\-]+",
    gen=r"[A-Za-z0-9_\-]+",
    prefset=r"[A-Za-z0-9_\-]+",
    run=r"[A-Za-z0-9_\-]+",
    clip=r"[A-Za-z0-9_\-]+",
    aug=r"[A-Za-z0-9_\-]+",
    cp=r"[A-Za-z0-9_\-]+",
    shard=r"\d+",
    nshards=r"\d+",
    task=r"[A-Za-z0-9_\-]+",
    target=r"base|[A-Za-z0-9_\-]+\.seed\d+",


def setting(section, name):
    """One config entry as a param: keys sorted, so a reordered YAML reruns nothing; without
    the keys that never change an output (how often a training checkpoints)."""
    return canonical(config[section][name]) if name is not None else None


def named_entries(section, *entries):
    """The entries of `section` that `entries` ((section, name) pairs) name, directly or not."""
    found = closure(config, *entries)
    return {name: entry for key, entry in found.items() for s, name in [key.split(".", 1)] if s == section}


def target_upstream(target):
    """`upstream` of an evaluation target: "base" or "<run>.seed<seed>"."""
    return upstream(config) if target == "base" else upstream(config, ("runs", target.rsplit(".seed", 1)[0]))


def base_model_dir():
    bm = config["base_model"]
    return bm["path"] if bm["kind"] == "pretrained" else f"{R}/base_model/model"


def base_model_vision(wildcards):
    """The world CLIP whose image encoder starts the tiny LLaVA's vision tower, if any."""
    name = config["base_model"].get("tiny", {}).get("vision_from")
    return {"vision": f"{R}/clip/{name}/model"} if name else {}


def world_inputs():
    """The world folder, where anything reads it: prompts, the tiny base model, its benchmarks."""
    uses_world = any("{world}" in p["source"]["path"] for p in config["prompt_sets"].values())
    uses_world |= config["base_model"]["kind"] == "tiny_llava"
    uses_world |= any(map(is_miniature, config["evaluation"]["tasks"]))
    return [WORLD] if uses_world else []


def source_file(path):
    """A prompt source's file: "{released}/<name>.json" is the miniature's released dataset
    of that name (rule make_released); "{world}/..." is inside the world (no input of its own)."""
    if "{world}" in path:
        return None
    return path.replace("{released}", f"{R}/released")


def prompt_source(wildcards):
    """A real prompt source file is an input (its existence checked, changes tracked)."""
    path = source_file(config["prompt_sets"][wildcards.pset]["source"]["path"])
    return [path] if path else []


def response_path(seed, pset, view, gen):
    return f"{R}/seed{seed}/responses/{pset}.{view}.{gen}.jsonl"


def shard_path(seed, pset, view, gen, shard, nshards):
    return f"{R}/seed{seed}/responses/shards/{pset}.{view}.{gen}.{shard}-of-{nshards}.jsonl"


def generation_wildcard(sharded):
    """The `gen` wildcard limited to the generations that ask for shards (or to those that do
    not), so that sample_responses and join_response_shards never claim the same file."""
    names = [g for g, c in config["generation"].items() if (c["shards"] > 1) == sharded]
    return "{gen," + ("|".join(re.escape(n) for n in names) or "(?!)") + "}"  # (?!): matches nothing


def response_shards(wildcards):
    """The shard files join_response_shards joins."""
    n = config["generation"][wildcards.gen]["shards"]
    return [shard_path(wildcards.seed, wildcards.pset, wildcards.view, wildcards.gen, k, n) for k in range(n)]


def reference_path(seed, prefset):
    return f"{R}/seed{seed}/preferences/{prefset}.reference.safetensors"


def description_path(seed, pset, cp):
    return f"{R}/seed{seed}/descriptions/{pset}.{cp}.jsonl"


def revision_path(seed, pset, cp, gen):
    return f"{R}/seed{seed}/revisions/{pset}.{cp}.{gen}.jsonl"


def diversity_path(seed, d):
    return response_path(seed, d["prompts"], d["view"], d["generation"])


def preference_responses(wildcards):
    from prefalign.methods import responses_needed

    p = config["preference_sets"][wildcards.prefset]
    return {
        f"{view}|{gen}": (
            revision_path(wildcards.seed, p["prompts"], p["consr_prompts"], gen)
            if view == "revised"
            else response_path(wildcards.seed, p["prompts"], view, gen)
        )
        for view, gen in responses_needed(p)
    }


def preference_descriptions(wildcards):
    """ConSR: the base model's descriptions of the prompts' images."""
    p = config["preference_sets"][wildcards.prefset]
    if "consr_prompts" not in p:
        return {}
    return {"descriptions": description_path(wildcards.seed, p["prompts"], p["consr_prompts"])}


def preference_world(wildcards):
    """Oracle controls: the world, whose pool_answers.json labels their pairs; a released or
    labelled set: its prompt source's file, which holds its answers."""
    p = config["preference_sets"][wildcards.prefset]
    if p["method"] in ("released", "labelled"):
        return {"source": source_file(config["prompt_sets"][p["prompts"]]["source"]["path"])}
    return {"world": WORLD} if p["method"] == "oracle" else {}


def preference_models(wildcards):
    """The models a method needs to build its preferences (ASPO: base model and CLIP)."""
    from prefalign.methods import method

    p = config["preference_sets"][wildcards.prefset]
    wanted = getattr(method(p["method"]), "MODELS", ())
    models = {"model": base_model_dir()} if "base" in wanted else {}
    if "clip" in wanted and config["clip_models"][p["clip"]]["kind"] == "train_world":
        models["clip"] = f"{R}/clip/{p['clip']}/model"
    return models


def preference_set_files(seed, prefset):
    """Every file a preference set is made from, directly or not: prompts, responses, their
    noise manifests, ConSR's descriptions, the models and the world it reads. The jobs after
    the set list them as inputs, so that a newer one reruns them even where a failed job
    deleted the set between (Snakemake does not rebuild a missing intermediate file whose
    consumers' outputs exist)."""
    from types import SimpleNamespace

    from prefalign.methods import responses_needed

    wc = SimpleNamespace(seed=seed, prefset=prefset)
    p = config["preference_sets"][prefset]
    files = [f"{R}/seed{seed}/prompts/{p['prompts']}.jsonl"]
    for found in (preference_responses, preference_descriptions, preference_models, preference_world):
        files += found(wc).values()
    files += [
        augment_manifest(SimpleNamespace(seed=seed, pset=p["prompts"], view=view))
        for view, _ in responses_needed(p)
        if view in config["augmentations"]
    ]
    return sorted(set(files))


def run_files(run, seed):
    """The preference set a run trains on, its reference log-probs, and what they are made from."""
    prefset = config["runs"][run]["preferences"]
    return [
        f"{R}/seed{seed}/preferences/{prefset}.jsonl",
        reference_path(seed, prefset),
        *preference_set_files(seed, prefset),
    ]


def run_seeds(run):
    return config["runs"][run]["seeds"]


def trained_preference_files(suffix):
    """Each preference set some run trains on, per seed, as `{set}{suffix}` (".jsonl": the
    records, ".stats.json": their counts)."""
    return sorted(
        {
            f"{R}/seed{s}/preferences/{r['preferences']}{suffix}"
            for run, r in config["runs"].items()
            for s in run_seeds(run)
        }
    )


def table_outputs():
    """What the tables stage writes: the miniature's tables where its benchmarks run, label
    accuracy where ground truth exists, the papers' benchmark table where those run."""
    tasks = config["evaluation"]["tasks"]
    out = [f"{R}/tables/sources.json", *[f"{R}/tables/preference_counts.{ext}" for ext in ("md", "csv")]]
    if any(map(is_miniature, tasks)):
        out += [f"{R}/tables/main.{ext}" for ext in ("md", "csv", "png")]
        out += [f"{R}/tables/deltas.{ext}" for ext in ("md", "csv", "png")]
        if positive_control():
            out += [f"{R}/tables/oracle_fraction.{ext}" for ext in ("md", "csv")]
        if world_inputs():
            out += [f"{R}/tables/label_accuracy_vs_gain.{ext}" for ext in ("md", "csv", "png")]
            out += [f"{R}/tables/label_accuracy_vs_gain_points.{ext}" for ext in ("md", "csv")]
        out.append(f"{R}/tables/response_length.md")
    if world_inputs():
        out += [f"{R}/tables/label_accuracy.md", f"{R}/tables/label_accuracy_by_group.md"]
    if config["tables"]["diversity"]:
        out.append(f"{R}/tables/diversity.md")
    if not all(map(is_miniature, tasks)):
        out += [f"{R}/tables/benchmarks.md", f"{R}/tables/benchmarks.csv"]
    return out


# The report (`make report`) lists its categories by name: numbered in reading order.
RESULTS, EXAMPLES, TRAINING, LABELS = "1 Results", "2 Examples", "3 Training", "4 Preference labels"
BASE_MODEL, RESPONSES, AUGMENTATION = "5 Base model", "6 Responses", "7 Noise augmentation"
PAPER_TABLES = "8 Paper tables"
REPORT_CATEGORIES = {
    "main": RESULTS,
    "deltas": RESULTS,
    "oracle_fraction": RESULTS,
    "benchmarks": RESULTS,
    "label_accuracy": LABELS,
    "label_accuracy_by_group": LABELS,
    "label_accuracy_vs_gain": LABELS,
    "label_accuracy_vs_gain_points": LABELS,
    "preference_counts": LABELS,
    "response_length": RESPONSES,
    "diversity": RESPONSES,
}


def in_report(path, caption, category, subcategory=None, **labels):
    """`path` marked for the report, captioned by report/captions/<caption>.rst."""
    return report(
        path,
        caption=f"../report/captions/{caption}.rst",
        category=category,
        subcategory=subcategory,
        labels=labels,
    )


def table_figures(outputs):
    """The tables stage's outputs, its figures marked for the report."""
    return [
        (
            in_report(f, f"{Path(f).stem}_figure", REPORT_CATEGORIES[Path(f).stem], name=Path(f).stem, kind="figure")
            if f.endswith(".png")
            else f
        )
        for f in outputs
    ]


def main_runs():
    """The main table's runs, in table order."""
    return [run for run in run_order(config) if config["runs"][run]["main_table"]]


def report_runs():
    """(run, seed) of every main-table run: their training curves, overlaid."""
    return [(run, s) for run in main_runs() for s in run_seeds(run)]


def gallery_models():
    """The evaluation targets the gallery shows (the miniature): base, each main run's first seed."""
    if not (world_inputs() and any(map(is_miniature, config["evaluation"]["tasks"]))):
        return []
    return ["base"] + [f"{run}.seed{run_seeds(run)[0]}" for run in main_runs()]


def report_tables():
    """The markdown tables the report shows as pages: the tables stage's and the paper tables."""
    return [f for f in table_outputs() if f.endswith(".md")] + paper_table_outputs()


def report_table_page(name):
    """A table's page in the report: a paper's table under its paper, the others by category."""
    page = f"{R}/report/tables/{name}.html"
    if name in config["paper_tables"]:
        return in_report(page, "paper_table", PAPER_TABLES, paper_of(name), name=name, kind="table")
    return in_report(page, name, REPORT_CATEGORIES[name], name=name, kind="table")


def report_page_outputs():
    """The outputs of report_pages: each markdown table as HTML, the overlaid training curves,
    and (the miniature) the base model's competence and the gallery."""
    out = [report_table_page(Path(f).stem) for f in report_tables()]
    out.append(
        in_report(
            f"{R}/report/training_curves.png",
            "training_overlay",
            TRAINING,
            "all main runs",
            name="training curves",
            kind="figure",
        )
    )
    if config["base_model"]["kind"] == "tiny_llava":
        out.append(in_report(f"{R}/report/competence.png", "competence", BASE_MODEL, name="competence", kind="figure"))
    if gallery_models():
        out.append(in_report(f"{R}/report/gallery.html", "gallery", EXAMPLES, name="gallery", kind="table"))
    return out


def paper_table_wildcard(figures):
    """The `table` wildcard limited to the config's paper tables (figures=False) or figures
    (figures=True), so that it never claims the tables stage's files."""
    names = [n for n in config["paper_tables"] if ("_figure" in n) == figures]
    pattern = "|".join(re.escape(n) for n in names) or "(?!)"  # (?!): matches nothing
    return f"{{table,{pattern}}}"


def paper_table_outputs():
    """Each paper table's markdown (its .csv beside it; a figure's .png too)."""
    return [f"{R}/tables/{name}.md" for name in config["paper_tables"]]


def positive_control():
    """The first run trained on ground-truth pairs as they are (an `oracle` set, labels
    `correct`), or None."""
    sets = config["preference_sets"]
    return next(
        (
            run
            for run, r in config["runs"].items()
            if sets[r["preferences"]]["method"] == "oracle" and sets[r["preferences"]]["labels"] == "correct"
        ),
        None,
    )


def augment_manifest(wildcards):
    if wildcards.view == "clean":
        return []
    return f"{R}/seed{wildcards.seed}/augment/{wildcards.pset}.{wildcards.view}.jsonl"


def eval_dirs(run):
    return [f"{R}/eval/{run}.seed{s}" for s in run_seeds(run)]


def train_logs(run):
    return [f"{R}/seed{s}/train/{run}/log.csv" for s in run_seeds(run)]


def paper_table_runs(wildcards):
    return config["paper_tables"][wildcards.table]["runs"]


def split_evaluation():
    return config["evaluation"]["split_tasks"]


def evaluation_inputs(target):
    """What evaluating `target` ("base" or "<run>.seed<seed>") reads: the model, the world and
    the adapter; with `evaluation.split_tasks`, the per-task folders that evaluate_task writes."""
    if split_evaluation():
        return {"task_results": [f"{R}/eval/tasks/{target}/{t}" for t in config["evaluation"]["tasks"]]}
    return evaluation_task_inputs(target)


def evaluation_task_inputs(target):
    inputs = {"model": base_model_dir(), "world": world_inputs()}
    if target != "base":
        run, seed = target.rsplit(".seed", 1)
        inputs["adapter"] = f"{R}/seed{seed}/train/{run}/adapter"
        inputs["upstream"] = run_files(run, seed)
    return inputs


def training_gpus(wildcards):
    """A train job's GPUs: one per process of its training setting (none on a CPU config)."""
    tcfg = config["training"][config["runs"][wildcards.run]["training"]]
    return tcfg["processes"] if config["device"].startswith("cuda") else 0
