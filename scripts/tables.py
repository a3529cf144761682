from pathlib import Path

from prefalign import stages
from prefalign.tables import write_tables

stages.setup(snakemake)
runs = snakemake.params.runs
models, labels = {"base": [snakemake.input.base]}, {"base": "base"}
prefs = {}
for run, rcfg in runs.items():
    models[run] = [d for d in snakemake.input.runs if Path(d).name.startswith(f"{run}.seed")]
    labels[run] = rcfg.get("label", run)
    prefs[rcfg["preferences"]] = [f for f in snakemake.input.prefs if Path(f).stem == rcfg["preferences"]]
write_tables(Path(snakemake.output.main).parent, models, labels, prefs,
             Path(snakemake.input.world) / "pool_answers.json", snakemake.params.tables)
print(f"tables written to {Path(snakemake.output.main).parent}/")
