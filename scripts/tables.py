from pathlib import Path

from prefalign import stages
from prefalign.tables import write_tables

stages.setup(snakemake)
runs = {run: snakemake.params.runs[run] for run in snakemake.params.order}
tcfg = snakemake.params.tables
models, labels = {"base": [snakemake.input.base]}, {"base": "base"}
prefs = {}
for run, rcfg in runs.items():
    models[run] = [d for d in snakemake.input.runs if Path(d).name.startswith(f"{run}.seed")]
    labels[run] = rcfg.get("label", run)
    prefs[rcfg["preferences"]] = [f for f in snakemake.input.prefs if Path(f).stem == rcfg["preferences"]]
n_seeds = len(snakemake.config["seeds"])
diversity = {d["label"]: snakemake.input.diversity[k * n_seeds:(k + 1) * n_seeds]
             for k, d in enumerate(tcfg.get("diversity", []))}
out_dir = Path(snakemake.output[0]).parent
write_tables(out_dir, models, labels, prefs,
             (Path(world) / "pool_answers.json") if (world := stages.optional_input(snakemake, "world")) else None, tcfg,
             main_rows=[r for r, c in runs.items() if c.get("main_table", True)],
             ablations=snakemake.params.ablations, diversity_sets=diversity, tasks=snakemake.params.tasks,
             control=snakemake.params.control, run_preferences={r: c["preferences"] for r, c in runs.items()})
print(f"tables written to {out_dir}/")
