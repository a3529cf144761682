from prefalign.stages import job

job.run_in_forkserver()  # first: under prefalign.forkserver the job runs in a fork that has its imports

from prefalign.settings import EvaluationSettings
from prefalign.stages.evaluate import evaluate

job.setup(snakemake)
i, p = snakemake.input, snakemake.params
evaluate(model_dir=i.model, adapter_dir=i.get("adapter"), world_dir=job.optional_input(snakemake, "world"),
         out_dir=snakemake.output[0], evaluation=EvaluationSettings.of(p.evaluation), **job.placement(snakemake))
