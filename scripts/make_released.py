from prefalign.stages import job

job.run_in_forkserver()  # first: under prefalign.forkserver the job runs in a fork that has its imports

from prefalign.stages.make_released import make_released

job.setup(snakemake)
make_released(out_path=snakemake.output[0], world_dir=snakemake.input[0], **snakemake.params.dataset)
