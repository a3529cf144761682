from prefalign.stages import job

job.run_in_forkserver()  # first: under prefalign.forkserver the job runs in a fork that has its imports

from pathlib import Path

from prefalign.stages.report_pages import report_pages

job.setup(snakemake)
i, p = snakemake.input, snakemake.params
out_dir = next(Path(f).parent for f in snakemake.output if f.endswith("training_curves.png"))
report_pages(out_dir=out_dir, table_files=i.tables, train_logs=dict(zip(map(tuple, p.trained), i.logs)),
             labels=p.labels, competence=job.optional_input(snakemake, "competence"),
             eval_dirs=dict(zip(p.models, i.evaluations)), world_dir=job.optional_input(snakemake, "world"))
print(f"report pages written to {out_dir}/")
