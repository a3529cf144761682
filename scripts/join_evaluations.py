from prefalign.evaluation import join_evaluations
from prefalign.stages import job

job.setup(snakemake)
join_evaluations(snakemake.input.task_results, snakemake.params.evaluation["tasks"], snakemake.output[0])
