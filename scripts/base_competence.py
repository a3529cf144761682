from prefalign.stages import job

job.run_in_forkserver()  # first: under prefalign.forkserver the job runs in a fork that has its imports

from prefalign.stages.train_base_model import base_competence

job.setup(snakemake)
base_competence(model_dir=snakemake.input.model, world_dir=snakemake.input.world,
                competence_csv=snakemake.output[0], noise_steps=snakemake.params.noise_steps,
                seed=snakemake.params.seed, **job.placement(snakemake))
