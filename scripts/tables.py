from prefalign.stages import job

job.run_in_forkserver()  # first: under prefalign.forkserver the job runs in a fork that has its imports

from pathlib import Path

from prefalign.settings import RunSettings, TablesSettings
from prefalign.stages.tables import tables

job.setup(snakemake)
i, p = snakemake.input, snakemake.params
out_dir = Path(snakemake.output[0]).parent
tables(out_dir=out_dir, base_dir=i.base, run_dirs=i.runs, pref_files=i.prefs, stats_files=i.stats,
       diversity_files=i.diversity, world_dir=job.optional_input(snakemake, "world"),
       runs={name: RunSettings.of(run) for name, run in p.runs.items()}, order=p.order,
       tables=TablesSettings.of(p.tables),
       tasks=p.tasks,
       control=p.control, n_seeds=len(snakemake.config["seeds"]))
print(f"tables written to {out_dir}/")
