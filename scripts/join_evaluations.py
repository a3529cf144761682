from prefalign.stages import job

job.run_in_forkserver()  # first: under prefalign.forkserver the job runs in a fork that has its imports

from prefalign.evaluation import join_evaluations

job.setup(snakemake)
join_evaluations(snakemake.input.task_results, snakemake.params.evaluation["tasks"], snakemake.output[0])
