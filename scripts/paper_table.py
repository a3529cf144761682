from prefalign.stages import job

job.run_in_forkserver()  # first: under prefalign.forkserver the job runs in a fork that has its imports

from pathlib import Path

from prefalign.settings import PaperTableSettings, TablesSettings
from prefalign.stages.paper_table import paper_table

job.setup(snakemake)
i, p, w = snakemake.input, snakemake.params, snakemake.wildcards
out_dir = Path(snakemake.output.md).parent
paper_table(out_dir=out_dir, name=w.table, table=PaperTableSettings.of(p.table), base_dir=i.base, run_dirs=i.runs,
            labels=p.labels, tables=TablesSettings.of(p.tables), tasks=p.tasks, png=snakemake.output.get("png"),
            training=(snakemake.output.get("training"), i.get("logs", [])))
print(f"{w.table} written to {out_dir}/")
