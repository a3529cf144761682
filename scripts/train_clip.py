from prefalign.stages import job

job.run_in_forkserver()  # first: under prefalign.forkserver the job runs in a fork that has its imports

from prefalign.settings import ClipSettings
from prefalign.stages.train_clip import train_clip

job.setup(snakemake)
train_clip(world_dir=snakemake.input.world, out_dir=snakemake.output.model, log_csv=snakemake.output.log,
           clip=ClipSettings.of(snakemake.params.clip))
